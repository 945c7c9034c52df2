"""Typed scenario schemas, one module per scenario kind (see ``twin.scenario``)."""
