"""FHIR R4 for the journal systems and the region's data platform (docs/fhir.md).

- mapping, one module per resource, from a record (its view and merge state)
  to FHIR R4 JSON: :mod:`.patient`, :mod:`.practitioner`, :mod:`.service_request`
  (visit requests with their Task, admissions), :mod:`.encounter` (visits, a round's
  residents), :mod:`.observation`, :mod:`.medication_statement`,
  :mod:`.allergy_intolerance`, :mod:`.flag`, :mod:`.care_plan`, :mod:`.composition`
  (the visit note and its amendments); what they share in :mod:`.elements`;
- :mod:`.resources`: which mapping a record type takes;
- :mod:`.endpoints`: the ``/fhir/r4/`` blueprint; :mod:`.bulk`: ``$export``;
  :mod:`.outcome`: every error as an OperationOutcome, in one place.
"""

__all__ = []
