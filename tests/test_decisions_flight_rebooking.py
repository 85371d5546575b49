"""A whole model in the style of the standard's flight rebooking example: item definitions with spaces,
filters over lists of contexts, sort with a knowledge model whose logic is a context of decision tables,
and a recursive knowledge model called by invocation. No DB, no Flask."""
import datetime as dt
from decimal import Decimal

from lxml import etree

from service.engine.decisions import DecisionRegistry, check_decisions, load_decisions

NS = "https://www.omg.org/spec/DMN/20230324/MODEL/"
BODY = """
<itemDefinition name="tFlight"><itemComponent name="Flight Number"><typeRef>string</typeRef></itemComponent>
 <itemComponent name="From"><typeRef>string</typeRef></itemComponent><itemComponent name="To"><typeRef>string</typeRef></itemComponent>
 <itemComponent name="Departure"><typeRef>dateTime</typeRef></itemComponent><itemComponent name="Capacity"><typeRef>number</typeRef></itemComponent>
 <itemComponent name="Status"><typeRef>string</typeRef></itemComponent></itemDefinition>
<itemDefinition name="tFlightTable" isCollection="true"><typeRef>tFlight</typeRef></itemDefinition>
<itemDefinition name="tPassenger"><itemComponent name="Name"><typeRef>string</typeRef></itemComponent>
 <itemComponent name="Status"><typeRef>string</typeRef></itemComponent><itemComponent name="Miles"><typeRef>number</typeRef></itemComponent>
 <itemComponent name="Flight Number"><typeRef>string</typeRef></itemComponent></itemDefinition>
<itemDefinition name="tPassengerTable" isCollection="true"><typeRef>tPassenger</typeRef></itemDefinition>
<inputData id="i1" name="Flight List"><variable name="Flight List" typeRef="tFlightTable"/></inputData>
<inputData id="i2" name="Passenger List"><variable name="Passenger List" typeRef="tPassengerTable"/></inputData>
<decision id="d1" name="Prioritized Waiting List">
 <variable name="Prioritized Waiting List" typeRef="tPassengerTable"/>
 <informationRequirement><requiredInput href="#i1"/></informationRequirement>
 <informationRequirement><requiredInput href="#i2"/></informationRequirement>
 <knowledgeRequirement><requiredKnowledge href="#b1"/></knowledgeRequirement>
 <context>
  <contextEntry><variable name="Cancelled Flights"/><literalExpression><text>Flight List[Status = "cancelled"].Flight Number</text></literalExpression></contextEntry>
  <contextEntry><variable name="Waiting List"/><literalExpression><text>Passenger List[list contains(Cancelled Flights, Flight Number)]</text></literalExpression></contextEntry>
  <contextEntry><literalExpression><text>sort(Waiting List, passenger priority)</text></literalExpression></contextEntry>
 </context>
</decision>
<businessKnowledgeModel id="b1" name="passenger priority">
 <encapsulatedLogic><formalParameter name="Passenger1" typeRef="tPassenger"/><formalParameter name="Passenger2" typeRef="tPassenger"/>
  <context>
   <contextEntry><variable name="Passenger1 Status Priority"/><decisionTable hitPolicy="UNIQUE">
      <input><inputExpression><text>Passenger1.Status</text></inputExpression></input>
      <output name="p"/>
      <rule><inputEntry><text>"gold"</text></inputEntry><outputEntry><text>1</text></outputEntry></rule>
      <rule><inputEntry><text>"silver"</text></inputEntry><outputEntry><text>2</text></outputEntry></rule>
      <rule><inputEntry><text>"bronze"</text></inputEntry><outputEntry><text>3</text></outputEntry></rule>
   </decisionTable></contextEntry>
   <contextEntry><variable name="Passenger2 Status Priority"/><decisionTable hitPolicy="UNIQUE">
      <input><inputExpression><text>Passenger2.Status</text></inputExpression></input>
      <output name="p"/>
      <rule><inputEntry><text>"gold"</text></inputEntry><outputEntry><text>1</text></outputEntry></rule>
      <rule><inputEntry><text>"silver"</text></inputEntry><outputEntry><text>2</text></outputEntry></rule>
      <rule><inputEntry><text>"bronze"</text></inputEntry><outputEntry><text>3</text></outputEntry></rule>
   </decisionTable></contextEntry>
   <contextEntry><literalExpression><text>if Passenger1 Status Priority &lt; Passenger2 Status Priority then true
     else if Passenger1 Status Priority &gt; Passenger2 Status Priority then false
     else Passenger1.Miles &gt; Passenger2.Miles</text></literalExpression></contextEntry>
  </context></encapsulatedLogic></businessKnowledgeModel>
<decision id="d2" name="Rebooked">
 <informationRequirement><requiredDecision href="#d1"/></informationRequirement>
 <informationRequirement><requiredInput href="#i1"/></informationRequirement>
 <knowledgeRequirement><requiredKnowledge href="#b2"/></knowledgeRequirement>
 <invocation><literalExpression><text>reassign next passenger</text></literalExpression>
  <binding><parameter name="Waiting List"/><literalExpression><text>Prioritized Waiting List</text></literalExpression></binding>
  <binding><parameter name="Reassigned Passengers List"/><literalExpression><text>[]</text></literalExpression></binding>
  <binding><parameter name="Flights"/><literalExpression><text>Flight List</text></literalExpression></binding>
 </invocation>
</decision>
<businessKnowledgeModel id="b2" name="reassign next passenger">
 <encapsulatedLogic><formalParameter name="Waiting List"/><formalParameter name="Reassigned Passengers List"/><formalParameter name="Flights"/>
  <context>
   <contextEntry><variable name="Next Passenger"/><literalExpression><text>Waiting List[1]</text></literalExpression></contextEntry>
   <contextEntry><variable name="Original Flight"/><literalExpression><text>Flights[Flight Number = Next Passenger.Flight Number][1]</text></literalExpression></contextEntry>
   <contextEntry><variable name="Best Alternate Flight"/><literalExpression><text>Flights[From = Original Flight.From and To = Original Flight.To and Departure &gt; Original Flight.Departure and Status = "scheduled" and has capacity(item, Reassigned Passengers List)][1]</text></literalExpression></contextEntry>
   <contextEntry><variable name="Reassigned Passenger"/><context>
     <contextEntry><variable name="Name"/><literalExpression><text>Next Passenger.Name</text></literalExpression></contextEntry>
     <contextEntry><variable name="Status"/><literalExpression><text>Next Passenger.Status</text></literalExpression></contextEntry>
     <contextEntry><variable name="Miles"/><literalExpression><text>Next Passenger.Miles</text></literalExpression></contextEntry>
     <contextEntry><variable name="Flight Number"/><literalExpression><text>Best Alternate Flight.Flight Number</text></literalExpression></contextEntry>
   </context></contextEntry>
   <contextEntry><variable name="Remaining Waiting List"/><literalExpression><text>remove(Waiting List, 1)</text></literalExpression></contextEntry>
   <contextEntry><variable name="Updated Reassigned Passengers List"/><literalExpression><text>append(Reassigned Passengers List, Reassigned Passenger)</text></literalExpression></contextEntry>
   <contextEntry><literalExpression><text>if count(Remaining Waiting List) &gt; 0 then reassign next passenger(Remaining Waiting List, Updated Reassigned Passengers List, Flights) else Updated Reassigned Passengers List</text></literalExpression></contextEntry>
  </context></encapsulatedLogic>
 <knowledgeRequirement><requiredKnowledge href="#b3"/></knowledgeRequirement></businessKnowledgeModel>
<businessKnowledgeModel id="b3" name="has capacity">
 <encapsulatedLogic><formalParameter name="flight"/><formalParameter name="rebooked list"/>
  <literalExpression><text>flight.Capacity &gt; count(rebooked list[Flight Number = flight.Flight Number])</text></literalExpression>
 </encapsulatedLogic></businessKnowledgeModel>
"""


def flight(number, departure, capacity, status):
    return {"Flight Number": number, "From": "SFO", "To": "SNA", "Departure": dt.datetime.fromisoformat(departure),
            "Capacity": Decimal(capacity), "Status": status}


def passenger(name, status, miles):
    return {"Name": name, "Status": status, "Miles": Decimal(miles), "Flight Number": "UA123"}


FLIGHTS = [flight("UA123", "2017-01-01T18:00:00", 5, "cancelled"), flight("UA456", "2017-01-01T19:00:00", 2, "scheduled"),
           flight("UA789", "2017-01-01T21:00:00", 2, "scheduled"), flight("UA1001", "2017-01-01T23:00:00", 0, "scheduled")]
PASSENGERS = [passenger("Tom", "bronze", 10), passenger("Igor", "gold", 50000), passenger("Jenny", "gold", 500000),
              passenger("Harry", "gold", 100000), passenger("Dick", "silver", 100)]


def registry():
    root = etree.fromstring(f'<definitions xmlns="{NS}" id="x" name="x" namespace="n">{BODY}</definitions>'.encode())
    model = load_decisions(root, "rebooking.dmn", strict=False)
    assert check_decisions(model) == []
    reg = DecisionRegistry(strict=False)
    reg.add(model)
    return reg


def test_waiting_list_is_sorted_by_status_then_miles():
    result = registry().evaluate("d1", {"Flight List": FLIGHTS, "Passenger List": PASSENGERS})
    assert [p["Name"] for p in result.value] == ["Jenny", "Harry", "Igor", "Dick", "Tom"]


def test_passengers_are_rebooked_onto_flights_with_room_and_the_last_gets_none():
    result = registry().evaluate("d2", {"Flight List": FLIGHTS, "Passenger List": PASSENGERS})
    assert [(p["Name"], p["Flight Number"]) for p in result.value] == [
        ("Jenny", "UA456"), ("Harry", "UA456"), ("Igor", "UA789"), ("Dick", "UA789"), ("Tom", None)]
