"""The engine: SpiffWorkflow 3.2 made to run Camunda Modeler diagrams as drawn, sandboxed.

Nothing in this package knows about HTTP or the database: ``bundle`` parses and
checks deployments, ``runtime`` runs one case in memory, ``clock`` and
``calendar`` say what time and which day it is.
"""
