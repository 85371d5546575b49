"""Timers that fire by themselves: every BPMN timer kind, London wall time, working days, the
one clock, the CLI, the background scheduler, catch-up after downtime and bounded case state.

Diagrams: tests/fixtures/timers/*.bpmn (and the review pathway in tests/fixtures/pathways).
"""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event, func, select

from conftest import FIXTURES, everything, in_council, make_app
from service import cases, scheduler
from service.engine import calendar, clock, runtime
from service.engine.clock import LONDON
from service.models import AuditEvent, Case, Notification, OpenTask, PendingTimer, db
from service.step_writes import StepWrites

TIMERS = FIXTURES / "timers"
PATHWAY = FIXTURES / "pathways"
UTC = timezone.utc


def london(*args) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def start(api, process, data=None, reference="FAM-1", as_="worker"):
    response = api.post("/cases", json={"process": process, "reference": reference, "data": data or {}}, as_=as_)
    assert response.status_code == 201, response.json
    return response.json


def fire(app, at=None) -> int:
    return scheduler.fire_due(app, clock.as_utc(at) if at is not None else None)


def timers_of(app, case_id) -> dict[str, datetime]:
    with app.app_context(), everything():
        return {t.name: t.due_at for t in db.session.scalars(select(PendingTimer).where(PendingTimer.case_id == case_id))}


def fired(app, case_id=None) -> list[AuditEvent]:
    with app.app_context(), everything():
        query = select(AuditEvent).where(AuditEvent.event == "timer_fired").order_by(AuditEvent.id)
        if case_id is not None:
            query = query.where(AuditEvent.case_id == case_id)
        events = list(db.session.scalars(query))
        db.session.expunge_all()
        return events


@pytest.fixture
def timers_api(api):
    response = api.deploy(TIMERS)
    assert response.status_code == 201, response.json
    return api


# -- each kind of timer ------------------------------------------------------------------------

def test_intermediate_catch_timer_fires_when_due_and_not_before(app, timers_api, frozen_clock):
    case = start(timers_api, "timers_catch", {"delay": "PT1H"})
    assert case["tasks"] == []
    assert timers_of(app, case["id"]) == {"Event_Wait": datetime(2026, 12, 21, 10, 0, tzinfo=UTC)}
    assert fire(app, datetime(2026, 12, 21, 9, 59, 59, tzinfo=UTC)) == 0
    assert fire(app, datetime(2026, 12, 21, 10, 0, tzinfo=UTC)) == 1
    case = timers_api.get(f"/cases/{case['id']}").json
    assert [t["name"] for t in case["tasks"]] == ["Task_FollowUp"] and case["timers"] == []
    assert fire(app, datetime(2026, 12, 31, tzinfo=UTC)) == 0  # fired once, never again
    assert len(fired(app, case["id"])) == 1


def test_non_interrupting_reminder_after_p2d_and_working_day_escalation(app, api, frozen_clock):
    """review.bpmn: P2D reminder to the worker, ${working_days(5)} escalation to the team manager."""
    api.deploy(PATHWAY)
    case = start(api, "test_review", {"needs": 3})
    assert timers_of(app, case["id"]) == {"Event_RemindWorker": datetime(2026, 12, 23, 9, 0, tzinfo=UTC),
                                          # 5 working days after Mon 21 Dec 2026: 22, 23, 24, 29, 30
                                          "Event_Escalate": datetime(2026, 12, 30, 9, 0, tzinfo=UTC)}
    assert fire(app, london(2026, 12, 23, 8, 59)) == 0
    assert fire(app, london(2026, 12, 23, 9, 0)) == 1
    case_now = api.get(f"/cases/{case['id']}").json
    assert [t["name"] for t in case_now["tasks"]] == ["Task_Assess"]  # non-interrupting: the task stays open
    [note] = api.get("/notifications").json
    assert note["kind"] == "reminder" and note["subject"] == "Reminder: Assess the family (case FAM-1)"
    assert "Step: Assess the family" in note["body"] and "Case: FAM-1" in note["body"]
    assert fire(app, london(2026, 12, 30, 9, 0)) == 1
    [note] = api.get("/notifications", as_="manager").json
    assert note["kind"] == "escalation"
    assert "This step is 7 days late." in note["body"]  # due 23 Dec (P2D), escalated 30 Dec
    assert api.get("/notifications", as_="front").json == []


def test_interrupting_boundary_escalation_after_p2d(app, timers_api, frozen_clock):
    case = start(timers_api, "timers_escalate")
    [visit] = case["tasks"]
    assert visit["due_at"].startswith("2026-12-22T09:00")  # camunda:dueDate P1D
    frozen_clock.advance(days=2, seconds=-1)
    assert scheduler.fire_due(app) == 0
    frozen_clock.advance(seconds=1)
    assert scheduler.fire_due(app) == 1
    case = timers_api.get(f"/cases/{case['id']}").json
    assert [t["name"] for t in case["tasks"]] == ["Task_Reallocate"]  # the visit was cancelled
    assert timers_api.post(f"/tasks/{visit['id']}/complete", json={"data": {}}).status_code == 409
    [note] = timers_api.get("/notifications", as_="manager").json
    assert note["kind"] == "escalation" and note["subject"] == "Escalation: Visit the family (case FAM-1)"
    assert "This step is 1 day late." in note["body"] and "Due: Tuesday 22 December 2026, 09:00" in note["body"]
    done = timers_api.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {}}, as_="manager").json
    assert done["status"] == "completed" and done["outcome"] == "reallocated"


def test_time_date_from_case_data_across_the_march_clock_change(app, timers_api, frozen_clock):
    # Started in winter (GMT) for a date after the clocks go forward (BST, 28 March 2027): 09:00 London is 08:00Z.
    case = start(timers_api, "timers_date", {"review_at": "2027-03-29T09:00"})
    assert timers_of(app, case["id"]) == {"Event_ReviewDate": datetime(2027, 3, 29, 8, 0, tzinfo=UTC)}
    assert fire(app, datetime(2027, 3, 29, 7, 59, 59, tzinfo=UTC)) == 0
    assert fire(app, datetime(2027, 3, 29, 8, 0, tzinfo=UTC)) == 1
    # The other way: set in summer for a winter date (the clocks go back on 31 October 2027).
    frozen_clock.move_to(london(2027, 7, 1, 12, 0))
    other = start(timers_api, "timers_date", {"review_at": "2027-11-01T09:00"}, reference="FAM-2")
    assert timers_of(app, other["id"]) == {"Event_ReviewDate": datetime(2027, 11, 1, 9, 0, tzinfo=UTC)}
    # A date with an explicit offset is taken as written; a date alone means 09:00 London that day.
    third = start(timers_api, "timers_date", {"review_at": "2027-12-01T09:00:00+00:00"}, reference="FAM-3")
    assert timers_of(app, third["id"])["Event_ReviewDate"] == datetime(2027, 12, 1, 9, 0, tzinfo=UTC)
    fourth = start(timers_api, "timers_date", {"review_at": "2027-08-02"}, reference="FAM-4")
    assert timers_of(app, fourth["id"])["Event_ReviewDate"] == datetime(2027, 8, 2, 8, 0, tzinfo=UTC)
    # A date already past when the case reaches the timer fires at once.
    past = start(timers_api, "timers_date", {"review_at": "2027-06-30T09:00"}, reference="FAM-5")
    assert past["timers"] == [] and [t["name"] for t in past["tasks"]] == ["Task_Review"]


@pytest.mark.parametrize("started, delay, due", [
    (london(2027, 3, 27, 9, 0), "P1D", datetime(2027, 3, 28, 8, 0, tzinfo=UTC)),     # 09:00 GMT -> 09:00 BST
    (london(2027, 10, 30, 9, 0), "P1D", datetime(2027, 10, 31, 9, 0, tzinfo=UTC)),   # 09:00 BST -> 09:00 GMT
    (london(2027, 3, 27, 9, 0), "PT24H", datetime(2027, 3, 28, 8, 0, tzinfo=UTC)),   # wall-clock hours
    (london(2027, 1, 31, 9, 0), "P1M", datetime(2027, 2, 28, 9, 0, tzinfo=UTC)),     # calendar month
])
def test_durations_keep_london_wall_time_across_clock_changes(app, timers_api, frozen_clock, started, delay, due):
    frozen_clock.move_to(started)
    case = start(timers_api, "timers_catch", {"delay": delay})
    assert timers_of(app, case["id"]) == {"Event_Wait": due}
    assert fire(app, due - timedelta(seconds=1)) == 0
    assert fire(app, due) == 1


def test_timers_inside_an_embedded_sub_process(app, timers_api, frozen_clock):
    case = start(timers_api, "timers_sub")
    assert timers_of(app, case["id"]) == {"Event_SubWait": datetime(2026, 12, 21, 10, 0, tzinfo=UTC),
                                          "Event_SubLate": datetime(2026, 12, 26, 9, 0, tzinfo=UTC)}
    assert fire(app, london(2026, 12, 21, 10, 0)) == 1  # the catch timer inside the sub-process
    case = timers_api.get(f"/cases/{case['id']}").json
    assert [t["name"] for t in case["tasks"]] == ["Task_SubPlan"]
    assert timers_of(app, case["id"])["Event_SubRemind"] == datetime(2026, 12, 22, 10, 0, tzinfo=UTC)
    assert fire(app, london(2026, 12, 22, 10, 0)) == 1  # a boundary reminder on a task inside it
    assert [n["kind"] for n in timers_api.get("/notifications").json] == ["reminder"]
    assert fire(app, london(2026, 12, 26, 9, 0)) == 1  # the interrupting timer on the sub-process itself
    case = timers_api.get(f"/cases/{case['id']}").json
    assert case["status"] == "completed" and case["outcome"] == "too_late" and case["tasks"] == []
    assert [n["kind"] for n in timers_api.get("/notifications", as_="manager").json] == ["escalation"]
    assert [e.task for e in fired(app, case["id"])] == ["Event_SubWait", "Event_SubRemind", "Event_SubLate"]


def test_timer_inside_a_call_activity(app, timers_api, frozen_clock):
    case = start(timers_api, "timers_call")
    assert timers_of(app, case["id"]) == {"Event_CalledWait": datetime(2026, 12, 22, 9, 0, tzinfo=UTC)}
    assert fire(app, london(2026, 12, 22, 8, 59)) == 0
    assert fire(app, london(2026, 12, 22, 9, 0)) == 1
    case = timers_api.get(f"/cases/{case['id']}").json
    [task] = case["tasks"]
    assert task["name"] == "Task_Check"
    done = timers_api.post(f"/tasks/{task['id']}/complete", json={"data": {}}).json
    assert done["status"] == "completed" and done["outcome"] == "done"


# -- cycles and bounded state ------------------------------------------------------------------

def test_quarterly_review_cycle_over_a_year_of_simulated_time(app, api, frozen_clock):
    """R/P3M from 15 November 2026: 15 Feb (GMT), 15 May, 15 Aug (BST), 15 Nov (GMT), always 10:00 London."""
    api.deploy(PATHWAY)
    frozen_clock.move_to(london(2026, 11, 15, 10, 0))
    case = start(api, "test_review", {"needs": 3})
    case = api.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {"risk": True}}).json
    assert [t["name"] for t in case["tasks"]] == ["Task_Approve"]
    dues, firing_days = [], []
    day = date(2026, 11, 16)
    while day <= date(2027, 11, 15):
        due = timers_of(app, case["id"])["Event_Quarterly"]
        frozen_clock.move_to(london(day.year, day.month, day.day, 10, 30))
        count = scheduler.fire_due(app)
        if count:
            assert count == 1
            dues.append(due)
            firing_days.append(day)
        day += timedelta(days=1)
    assert firing_days == [date(2027, 2, 15), date(2027, 5, 15), date(2027, 8, 15), date(2027, 11, 15)]
    assert [d.astimezone(LONDON).strftime("%d %b %H:%M %Z") for d in dues] == [
        "15 Feb 10:00 GMT", "15 May 10:00 BST", "15 Aug 10:00 BST", "15 Nov 10:00 GMT"]
    assert [d.astimezone(UTC).hour for d in dues] == [10, 9, 9, 10]
    assert timers_of(app, case["id"])["Event_Quarterly"] == london(2028, 2, 15, 10, 0)
    assert len(fired(app, case["id"])) == 4
    reminders = api.get("/notifications", as_="manager").json
    assert [n["kind"] for n in reminders] == ["reminder"] * 4
    case = api.get(f"/cases/{case['id']}").json
    assert [t["name"] for t in case["tasks"]] == ["Task_Approve"]  # the reminders never close the task


@pytest.fixture
def sqlite_only(tmp_path):
    app = make_app(f"sqlite:///{tmp_path / 'cases.db'}")
    yield app
    with app.app_context(), everything():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def tokens_for():
    from conftest import USERS
    from conftest import save_user

    def create(app):
        with app.app_context(), everything():
            for name, roles in USERS.items():
                save_user(db.session, name, roles, token=f"token-{name}", email=f"{name}@council.example")
            db.session.commit()
        return {name: f"token-{name}" for name in USERS}
    return create


def test_a_year_of_daily_reminders_keeps_the_case_flat(sqlite_only, tokens_for, frozen_clock):
    from conftest import Api

    app = sqlite_only
    api = Api(app, tokens_for(app))
    assert api.deploy(TIMERS).status_code == 201
    case_id = start(api, "timers_daily")["id"]

    def measure():
        with app.app_context(), everything():
            case = db.session.get(Case, case_id)
            workflow, _ = runtime.load(cases.process_of(db.session, case), case.state)
            return len(case.state), len(workflow.tasks), db.session.scalar(
                select(func.count()).select_from(OpenTask).where(OpenTask.case_id == case_id))

    sizes = {}
    for n in range(1, 366):
        frozen_clock.advance(days=1)
        assert scheduler.fire_due(app) == 1, n
        if n in (2, 30, 365):
            sizes[n] = measure()
    (state_2, tasks_2, rows_2), (state_30, tasks_30, _), (state_365, tasks_365, rows_365) = (
        sizes[2], sizes[30], sizes[365])
    assert tasks_2 == tasks_30 == tasks_365, sizes  # no task per reminder
    assert rows_2 == rows_365 == 1
    assert state_365 - state_2 < 20, sizes  # a few digits of counters, not a branch per firing
    assert len(fired(app, case_id)) == 365
    with app.app_context(), everything():
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 365
    case = api.get(f"/cases/{case_id}").json
    assert [t["name"] for t in case["tasks"]] == ["Task_Plan"]
    done = api.post(f"/tasks/{case['tasks'][0]['id']}/complete", json={"data": {}}).json
    assert done["status"] == "completed" and done["timers"] == []


def test_an_overdue_cycle_fires_once_after_downtime_and_keeps_its_calendar(app, timers_api, frozen_clock):
    case = start(timers_api, "timers_daily")
    assert timers_of(app, case["id"]) == {"Event_Daily": london(2026, 12, 22, 9, 0)}
    frozen_clock.move_to(london(2026, 12, 25, 15, 0))  # down for three and a half days
    assert scheduler.fire_due(app) == 1
    assert timers_of(app, case["id"]) == {"Event_Daily": london(2026, 12, 26, 9, 0)}  # next on its own schedule
    assert len(timers_api.get("/notifications").json) == 1


# -- working days ----------------------------------------------------------------------------

def test_working_days_10_from_21_december_2026_is_7_january_2027(app, timers_api, frozen_clock):
    # Christmas Day, Boxing Day (substitute Monday 28th) and New Year's Day are bank holidays.
    case = start(timers_api, "timers_workdays", {"referral_date": "2026-12-21"})
    assert timers_of(app, case["id"]) == {"Event_TenDays": london(2027, 1, 7, 9, 0),
                                          "Event_TenFromReferral": london(2027, 1, 7, 9, 0)}
    assert fire(app, london(2027, 1, 7, 8, 59)) == 0
    assert fire(app, london(2027, 1, 7, 9, 0)) == 2
    [task] = timers_api.get(f"/cases/{case['id']}").json["tasks"]
    assert task["due_at"].startswith("2027-01-21T09:00")  # dueDate ${working_days(10)} from when it opened


def test_working_days_counts_from_a_date_in_the_case_data(app, timers_api, frozen_clock):
    case = start(timers_api, "timers_workdays", {"referral_date": "2027-03-19T14:30:00"})
    # Fri 19 March 2027 14:30 GMT + 10 working days = Fri 2 April 2027? No: Good Friday (26 Mar) and
    # Easter Monday (29 Mar) are bank holidays in 2027, so 22,23,24,25,30,31,1,2,5,6 -> Tue 6 April 14:30 BST.
    assert timers_of(app, case["id"])["Event_TenFromReferral"] == london(2027, 4, 6, 14, 30)
    assert timers_of(app, case["id"])["Event_TenFromReferral"].hour == 13  # UTC, after the clocks went forward


def test_working_days_in_calendar_module():
    cal = calendar.WorkingCalendar()
    assert cal.add_working_days(date(2026, 12, 21), 10) == date(2027, 1, 7)
    assert not cal.is_working_day(date(2026, 12, 28))  # substitute Boxing Day
    assert not cal.is_working_day(date(2027, 5, 3)) and not cal.is_working_day(date(2027, 5, 31))
    assert not cal.is_working_day(date(2027, 8, 30))  # England and Wales summer bank holiday, not Scotland's
    assert cal.is_working_day(date(2027, 1, 4))  # Scotland's 2 January holiday is not England and Wales'
    with clock.clock_at(london(2027, 3, 26, 9, 0)):  # Friday 09:00 GMT -> Monday 09:00 BST
        due = calendar.working_days(1)
    assert due == london(2027, 3, 30, 9, 0) and due.utcoffset() == timedelta(hours=1)  # 29 Mar is Easter Monday
    with pytest.raises(ValueError):
        calendar.working_days(2.5)


def test_closure_days_the_council_configures_are_not_working_days(app, timers_api, frozen_clock):
    changed = timers_api.patch("/council", json={"closure_days": ["2026-12-31", "2026-12-24"]}, as_="admin")
    assert changed.status_code == 200, changed.json
    assert changed.json["closure_days"] == ["2026-12-24", "2026-12-31"]
    case = start(timers_api, "timers_workdays", {"referral_date": "2026-12-21"})
    # 22, 23, (24 closed), 29, 30, (31 closed), 4, 5, 6, 7, 8, 11
    assert timers_of(app, case["id"]) == {"Event_TenDays": london(2027, 1, 11, 9, 0),
                                          "Event_TenFromReferral": london(2027, 1, 11, 9, 0)}
    assert fire(app, london(2027, 1, 8, 9, 0)) == 0
    assert fire(app, london(2027, 1, 11, 9, 0)) == 2


def test_only_the_council_admin_changes_its_settings_and_bad_values_are_named(timers_api):
    assert timers_api.patch("/council", json={"closure_days": ["2026-12-24"]}, as_="worker").status_code == 403
    wrong = timers_api.patch("/council", json={"closure_days": ["24/12/2026"], "country": "france",
                                               "office_opens": "25:00"}, as_="admin")
    assert wrong.status_code == 422
    assert set(wrong.json["errors"]) == {"closure_days", "country", "office_opens"}
    assert timers_api.get("/council").json["closure_days"] == []  # nothing changed


# -- one clock, the CLI ------------------------------------------------------------------------

def test_cli_timers_fire_now_fires_what_is_due_at_that_instant(app, timers_api):
    with clock.clock_at(london(2026, 12, 21, 9, 0)):
        case = start(timers_api, "timers_sub")  # the sub-process's catch timer is due at 10:00
        other = start(timers_api, "timers_catch", {"delay": "P7D"}, reference="FAM-2")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["timers", "fire", "--now", "2026-12-21T09:59:59+00:00"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "0"
    result = runner.invoke(args=["timers", "fire", "--now", "2026-12-21T10:30:00"])  # naive: London time
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1"
    # The reminder the firing started is due P1D after the --now instant, not after the real now.
    assert timers_of(app, case["id"])["Event_SubRemind"] == datetime(2026, 12, 22, 10, 30, tzinfo=UTC)
    assert timers_of(app, other["id"]) == {"Event_Wait": datetime(2026, 12, 28, 9, 0, tzinfo=UTC)}
    [event_] = fired(app, case["id"])
    assert event_.at == datetime(2026, 12, 21, 10, 30, tzinfo=UTC)  # audit time is the --now instant too
    result = runner.invoke(args=["timers", "fire", "--now", "2026-12-28T09:00:00Z"])
    assert result.output.strip() == "3"  # the reminder, the sub-process's deadline and the other case's P7D
    result = runner.invoke(args=["timers", "fire", "--now", "next tuesday"])
    assert result.exit_code != 0 and "ISO 8601" in result.output


def test_the_one_clock_is_the_only_clock(app, timers_api, frozen_clock):
    """Nothing reads the system clock: a case started "in 2026" stays in 2026 whatever the real date."""
    case = start(timers_api, "timers_catch", {"delay": "PT1H"})
    with app.app_context(), everything():
        row = db.session.get(Case, case["id"])
        assert row.created_at == row.updated_at == datetime(2026, 12, 21, 9, 0, tzinfo=UTC)
    frozen_clock.advance(hours=1)
    assert scheduler.fire_due(app) == 1
    [event_] = fired(app, case["id"])
    assert event_.at == datetime(2026, 12, 21, 10, 0, tzinfo=UTC)


# -- the sweep ---------------------------------------------------------------------------------

def test_the_sweep_never_loads_cases_with_nothing_due(app, timers_api, frozen_clock):
    waiting = [start(timers_api, "timers_catch", {"delay": "P1D"}, reference=f"W-{i}")["id"] for i in range(10)]
    due = start(timers_api, "timers_catch", {"delay": "PT1H"}, reference="DUE")["id"]
    loaded = []

    def on_load(target, context):
        loaded.append(target.id)

    event.listen(Case, "load", on_load)
    event.listen(Case, "refresh", lambda target, context, attrs: loaded.append(target.id))
    try:
        assert fire(app, london(2026, 12, 21, 10, 0)) == 1
    finally:
        event.remove(Case, "load", on_load)
    assert set(loaded) == {due} and not set(waiting) & set(loaded)


def test_a_case_whose_firing_fails_keeps_its_timer_for_the_next_sweep(app, timers_api, frozen_clock, monkeypatch):
    ids = [start(timers_api, "timers_catch", {"delay": "PT1H"}, reference=f"F-{i}")["id"] for i in range(3)]
    broken = {ids[1]}
    real = cases.fire_timers

    def fire_or_die(session, case):
        count = real(session, case)  # the engine has run and the rows are written, not yet committed
        if case.id in broken:
            raise RuntimeError("the process died here")
        return count

    monkeypatch.setattr(cases, "fire_timers", fire_or_die)
    frozen_clock.advance(hours=1)
    assert scheduler.fire_due(app) == 2
    assert timers_of(app, ids[1]) == {"Event_Wait": datetime(2026, 12, 21, 10, 0, tzinfo=UTC)}  # not lost
    assert [e.case_id for e in fired(app)] == [ids[0], ids[2]]
    broken.clear()
    assert scheduler.fire_due(app) == 1
    assert sorted(e.case_id for e in fired(app)) == sorted(ids)


def test_a_failing_case_does_not_make_the_sweep_spin(app, timers_api, frozen_clock, monkeypatch):
    broken = start(timers_api, "timers_catch", {"delay": "PT1H"}, reference="BROKEN")["id"]
    start(timers_api, "timers_catch", {"delay": "PT3H"}, reference="LATER")
    real = cases.fire_timers

    def fire_or_die(session, case):
        if case.id == broken:
            raise RuntimeError("this case cannot be fired")
        return real(session, case)

    monkeypatch.setattr(cases, "fire_timers", fire_or_die)
    frozen_clock.advance(hours=1, minutes=1)
    service = scheduler.TimerService(app)  # not started: only its sweep and alarm are used
    service.sweep()
    # The broken case still has a due timer, but the alarm is for the next timer that can fire (in about
    # two hours), not for "now" over and over: the broken case waits for the safety interval.
    alarm = service.scheduler.get_job("next-due").trigger.run_date - datetime.now(UTC)
    assert timedelta(hours=1, minutes=58) < alarm <= timedelta(hours=2), alarm
    assert timers_of(app, broken) == {"Event_Wait": datetime(2026, 12, 21, 10, 0, tzinfo=UTC)}


def test_overdue_tasks_are_listed_for_managers(app, timers_api, frozen_clock):
    case = start(timers_api, "timers_escalate")
    other = start(timers_api, "timers_catch", {"delay": "PT1H"}, reference="FAM-2")
    assert timers_api.get("/tasks?overdue=true", as_="manager").json == []
    frozen_clock.advance(days=1, minutes=1)  # the visit was due after one day
    overdue = timers_api.get("/tasks?overdue=true", as_="manager").json
    assert [(t["case_id"], t["name"]) for t in overdue] == [(case["id"], "Task_Visit")]
    assert [t["name"] for t in timers_api.get("/tasks?overdue=true", as_="worker").json] == ["Task_Visit"]
    assert timers_api.get("/tasks?overdue=true", as_="front").json == []
    assert other["id"]


# -- the background scheduler ------------------------------------------------------------------

def _wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_the_background_timer_service_fires_a_due_timer_by_itself(app, timers_api):
    """Real clock, real APScheduler: a PT2S timer fires about two seconds after the case starts."""
    app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = 3600  # only the wake at the next due row can fire it
    service = scheduler.TimerService(app)
    service.start()
    try:
        time.sleep(0.3)  # the start-up sweep has run and found nothing
        started = time.monotonic()
        case = start(timers_api, "timers_catch", {"delay": "PT2S"})
        assert _wait_for(lambda: len(fired(app, case["id"])) == 1, 10), "the timer did not fire by itself"
        took = time.monotonic() - started
    finally:
        service.shutdown()
    assert 1.5 <= took <= 8, took  # due after 2 s; the rest is start-up and a loaded test machine
    case = timers_api.get(f"/cases/{case['id']}").json
    assert [t["name"] for t in case["tasks"]] == ["Task_FollowUp"]
    assert len(fired(app, case["id"])) == 1


def test_start_up_fires_every_overdue_timer_once_in_due_order(app, timers_api, frozen_clock):
    delays = ["PT5H", "PT1H", "PT3H", "PT2H", "PT4H"]
    ids = {start(timers_api, "timers_catch", {"delay": d}, reference=f"C-{d}")["id"]: d for d in delays}
    frozen_clock.advance(days=3)  # the service was down for three days
    app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = 3600
    service = scheduler.TimerService(app)
    service.start()
    try:
        assert _wait_for(lambda: len(fired(app)) == 5, 10)
        time.sleep(0.3)
    finally:
        service.shutdown()
    events = fired(app)
    assert [ids[e.case_id] for e in events] == ["PT1H", "PT2H", "PT3H", "PT4H", "PT5H"]


def test_a_commit_that_changes_timers_moves_the_alarm(app, timers_api, frozen_clock):
    app.config["TIMER_SAFETY_INTERVAL_SECONDS"] = 3600
    service = scheduler.TimerService(app)
    service.start()
    try:
        time.sleep(0.3)
        start(timers_api, "timers_catch", {"delay": "PT2H"})
        assert _wait_for(lambda: service.scheduler.get_job("next-due") is not None, 5)
        job = service.scheduler.get_job("next-due")
        # due in two hours of service-clock time: the alarm is set about two (real) hours ahead
        ahead = job.next_run_time - datetime.now(UTC)
        assert timedelta(hours=1, minutes=59) < ahead <= timedelta(hours=2, seconds=1), ahead
    finally:
        service.shutdown()


def test_only_a_timer_added_or_brought_forward_makes_the_scheduler_read_again(app, timers_api, frozen_clock):
    """A step that removes a timer or puts one back needs no re-read of the next due timer, and on PostgreSQL no
    NOTIFY (a statement): an alarm set for it rings, finds nothing due and reads the next due timer then. A step
    that adds a timer, or brings one forward, may need an earlier alarm: it marks the commit."""
    case_id = start(timers_api, "timers_catch", {"delay": "PT2H"})["id"]
    with app.app_context():
        in_council(db.session)
        [row] = db.session.get(Case, case_id).timers
        name, title, due, attached, properties, timer_id = (row.name, row.title, row.due_at, row.attached_task_id,
                                                            row.properties, row.id)

        def timer(at: datetime, id: str = timer_id) -> runtime.PendingTimer:
            return runtime.PendingTimer(id, name, title, at, attached, properties)

        def marked(timers: list[runtime.PendingTimer]) -> bool:
            case = db.session.get(Case, case_id)
            cases._sync_timers(db.session, case, timers, None, StepWrites(case))
            flag = db.session.info.pop(scheduler.TIMERS_CHANGED, False)
            db.session.rollback()
            return flag

        assert not marked([timer(due)])
        assert not marked([timer(due + timedelta(hours=1))])  # put back
        assert not marked([])  # removed
        assert marked([timer(due - timedelta(minutes=1))])  # brought forward
        assert marked([timer(due), timer(due + timedelta(days=1), "another")])  # added
