"""The FHIR R4 API at ``/fhir/r4/``: read, Patient search, ``$everything``, ``$export``, the CapabilityStatement.

Every call but the CapabilityStatement is made by an integration client
(``hemsync-server add-client``) with its bearer token, authenticated like a
laptop (server.api.caller) and limited to its municipalities' patients
(server.scope). A record outside them does not exist for the client (404).
Every patient whose data a call hands out is written to the audit log, like a
pull. Errors are OperationOutcomes (server.fhir.outcome).
"""

import re

from flask import Blueprint, current_app, g, request, send_file

from schema.clock import utcnow
from schema.errors import InvalidRecord

from .. import audit, auth, scope
from ..api import caller
from ..errors import InvalidRequest, NotFound, RoleForbidden
from ..settings import SERVER_VERSION
from ..body_encoding import json_body
from . import bulk, discharge, outcome, practitioner
from .elements import instant, split_id
from .patient import parse_identifier
from .resources import MAPPINGS, SOURCES, resources_of

__all__ = ["blueprint", "capability_statement"]

blueprint = Blueprint("fhir", __name__, url_prefix="/fhir/r4")
outcome.register(blueprint)
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: What ``$export`` takes: Bulk Data's NDJSON names (the spec says a server SHALL accept all three).
NDJSON = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
_PUBLIC = {"fhir.metadata"}


def _store():
    return current_app.extensions["hemsync.store"]


def _base():
    return request.url_root.rstrip("/") + blueprint.url_prefix


def _json(body, status=200, headers=None):
    response = current_app.response_class(current_app.json.dumps(body), status=status, mimetype=outcome.MEDIA_TYPE)
    response.headers.update(headers or {})
    return response


@blueprint.before_request
def authenticate():
    """An integration client's token, or nothing but the CapabilityStatement."""
    if request.endpoint in _PUBLIC:
        return
    g.device, g.user = caller()
    if g.user["role"] != auth.CLIENT_ROLE:
        raise RoleForbidden("the FHIR API is for integration clients: an admin enrolls one with "
                            "`hemsync-server add-client`")
    g.keys = scope.keys_for(_store(), g.user)


def _shown(pairs):
    _store().audit(audit.shown(g.user, g.device, pairs, f"{request.method} {request.path}"))


def _covers(stored):
    return stored is not None and g.keys.covers(stored.type, stored.id, stored.patient_id, stored.municipality)


@blueprint.get("/metadata")
def metadata():
    """The CapabilityStatement: what this server reads, searches and exports."""
    return _json(capability_statement(_base()))


@blueprint.get("/Practitioner/<resource_id>")
def read_practitioner(resource_id):
    """A staff member (doctor, nurse, dispatcher) as a Practitioner; no patient data, so not audited."""
    user = _store().get_user(resource_id) if _ID.fullmatch(resource_id) else None
    if user is None or user["role"] not in ("doctor", "nurse", "dispatcher"):
        raise NotFound(f"no Practitioner/{resource_id}")
    return _json(practitioner.to_fhir(user)[0])


@blueprint.get("/<resource_type>/<resource_id>")
def read(resource_type, resource_id):
    """One resource by id, when its record is in the client's scope."""
    if resource_type not in SOURCES:
        raise NotFound(f"hemsync serves no {resource_type}: see {_base()}/metadata")
    found = _find(resource_type, resource_id)
    if found is None:
        raise NotFound(f"no {resource_type}/{resource_id} in this client's municipalities")
    stored, patient_id, resource = found
    _shown([(patient_id, f"{stored.type}/{stored.id}")])
    return _json(resource)


def _find(resource_type, resource_id):
    if not _ID.fullmatch(resource_id):
        return None
    record_id, _ = split_id(resource_id)
    for record_type in SOURCES[resource_type]:
        stored = _store().get_record(record_type, record_id)
        if not _covers(stored):
            continue
        for patient_id, resource in resources_of(stored, g.keys.full):
            if resource["resourceType"] == resource_type and resource["id"] == resource_id:
                return stored, patient_id, resource
    return None


@blueprint.get("/Patient")
def search_patient():
    """Patients by ``identifier`` (personnummer or samordningsnummer, HL7 Sweden's systems or the OIDs)."""
    unknown = sorted(set(request.args) - {"identifier"})
    if unknown or "identifier" not in request.args:
        raise InvalidRequest(f"search Patient by identifier only (system|number), not {', '.join(unknown) or '-'}: "
                             "identifier=http://electronichealth.se/identifier/personnummer|191212121212")
    number = parse_identifier(request.args["identifier"])
    found = [s for s in _store().patients_with_personnummer(number) if _covers(s)]
    pairs = [(s.id, resource) for s in found for _, resource in resources_of(s, g.keys.full)]
    _shown([(s.id, f"patient/{s.id}") for s in found])
    return _json(_bundle(pairs))


def _bundle(pairs):
    return {"resourceType": "Bundle", "type": "searchset", "timestamp": instant(utcnow()), "total": len(pairs),
            "link": [{"relation": "self", "url": request.url}],
            "entry": [{"fullUrl": f"{_base()}/{r['resourceType']}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for _, r in pairs]}


@blueprint.get("/Patient/<patient_id>/$everything")
def everything(patient_id):
    """Everything of one patient in the client's scope as a searchset Bundle, with the staff it names."""
    store = _store()
    patient = store.get_record("patient", patient_id) if _ID.fullmatch(patient_id) else None
    if not _covers(patient):
        raise NotFound(f"no Patient/{patient_id} in this client's municipalities")
    stored_records = [patient] + [s for record_type in MAPPINGS if record_type not in ("patient", "round")
                                  for s in store.records_of_patients(record_type, [patient_id])]
    if patient.municipality in g.keys.municipalities:
        rounds = scope.ScopeKeys(municipalities=frozenset({patient.municipality}))
        stored_records += [s for page in bulk.pages(store, rounds, store.head()) for s in page if s.type == "round"]
    pairs, shown = [], []
    for stored in stored_records:
        for owner, resource in resources_of(stored, {patient_id}):
            pairs.append((owner, resource))
            shown.append((patient_id, f"{stored.type}/{stored.id}"))
    named = sorted({ref.split("/", 1)[1] for _, resource in pairs for ref in _practitioners(resource)})
    for user_id in named:
        user = store.get_user(user_id)
        if user is not None:
            pairs.append((None, practitioner.to_fhir(user)[0]))
    _shown(shown)
    return _json(_bundle(pairs))


def _practitioners(value):
    """Every ``Practitioner/…`` reference in a resource."""
    if isinstance(value, dict):
        ref = value.get("reference")
        found = [ref] if isinstance(ref, str) and ref.startswith("Practitioner/") else []
        return found + [r for v in value.values() for r in _practitioners(v)]
    if isinstance(value, list):
        return [r for v in value for r in _practitioners(v)]
    return []


@blueprint.get("/$export")
@blueprint.get("/Patient/$export")
def export():
    """Kick off a Bulk Data export of every patient in the client's scope: 202 with the status URL."""
    wanted = request.args.get("_outputFormat", "application/fhir+ndjson")
    if wanted not in NDJSON:
        raise InvalidRequest(f"_outputFormat {wanted!r} is not served: ask for application/fhir+ndjson")
    unsupported = sorted(set(request.args) - {"_outputFormat", "_type"})
    if unsupported:
        raise InvalidRequest(f"$export does not take {', '.join(unsupported)} here: use _type to choose "
                             "resource types; everything in scope is exported")
    types = {t.strip() for t in request.args.get("_type", "").split(",") if t.strip()}
    unknown = sorted(types - set(SOURCES))
    if unknown:
        raise InvalidRecord(f"_type {', '.join(unknown)} is not a resource type hemsync exports: "
                            f"{', '.join(sorted(SOURCES))}", details={"_type": unknown})
    job_id = bulk.kick_off(_store(), current_app.config["HEMSYNC"], g.device, g.user, g.keys, types, request.url)
    return _json(outcome.operation_outcome(202, f"export {job_id} started: poll its status URL",
                                           code="informational", severity="information"),
                 202, {"Content-Location": f"{_base()}/$export-status/{job_id}"})


@blueprint.get("/$export-status/<job_id>")
def export_status(job_id):
    """The export's status: 202 while it runs, 200 with the manifest when done, 500 when it failed."""
    state, body = bulk.status(current_app.config["HEMSYNC"], g.device, job_id, _base())
    if state == "running":
        return _json(outcome.operation_outcome(202, f"{body} records read", code="informational",
                                               severity="information"),
                     202, {"X-Progress": f"{body} records read", "Retry-After": "2"})
    if state == "failed":
        return _json(outcome.operation_outcome(500, body), 500)
    response = current_app.response_class(current_app.json.dumps(body), mimetype="application/json")
    return response


@blueprint.delete("/$export-status/<job_id>")
def export_cancel(job_id):
    """Cancel an export, or delete a finished one's files: 202."""
    bulk.cancel(current_app.config["HEMSYNC"], g.device, job_id)
    return _json(outcome.operation_outcome(202, f"export {job_id} deleted", code="informational",
                                           severity="information"), 202)


@blueprint.get("/$export-file/<job_id>/<name>")
def export_file(job_id, name):
    """One NDJSON file of a finished export, for the client that made it."""
    path = bulk.output_file(current_app.config["HEMSYNC"], g.device, job_id, name)
    return send_file(path.resolve(), mimetype="application/fhir+ndjson", conditional=False)


@blueprint.post("/Bundle")
def import_bundle():
    """A hospital's discharge notice (a transaction Bundle): the stay created or updated, its follow-up started."""
    body = json_body(current_app.config["HEMSYNC"]["HEMSYNC_MAX_BODY_BYTES"])
    done = discharge.import_notice(_store(), current_app.config["HEMSYNC"], g.device, g.user, g.keys, body)
    status = {"created": "201 Created", "updated": "200 OK", "unchanged": "200 OK"}[done["status"]]
    entries = []
    for entry in body.get("entry") or []:
        kind = (entry.get("resource") or {}).get("resourceType") if isinstance(entry, dict) else None
        location = {"Patient": f"Patient/{done['patient_id']}", "Encounter": f"Encounter/{done['stay_id']}",
                    "ServiceRequest": done["follow_up_request_id"] and f"ServiceRequest/{done['follow_up_request_id']}"
                    }.get(kind)
        response = {"status": status if kind == "Encounter" else "200 OK"}
        if location:
            response["location"] = location
        entries.append({"response": response})
    return _json({"resourceType": "Bundle", "type": "transaction-response", "entry": entries},
                 201 if done["status"] == "created" else 200)


@blueprint.route("/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
def unknown(rest):
    """Anything else under /fhir/r4/: an OperationOutcome, not the sync API's error shape."""
    raise NotFound(f"hemsync does not serve {request.method} /fhir/r4/{rest}: see {_base()}/metadata")


def capability_statement(base):
    """The CapabilityStatement of this server at ``base``."""
    read_only = [{"code": "read"}]
    resources = [{"type": kind, "interaction": read_only} for kind in sorted({*SOURCES, "Practitioner"})]
    for resource in resources:
        if resource["type"] == "Patient":
            resource["interaction"] = read_only + [{"code": "search-type"}]
            resource["searchParam"] = [{"name": "identifier", "type": "token",
                                        "documentation": "personnummer or samordningsnummer: HL7 Sweden's "
                                                         "systems, or the Skatteverket OIDs"}]
            resource["operation"] = [{"name": "everything",
                                      "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]
    resources.append({"type": "Bundle", "interaction": [{"code": "create"}],
                      "documentation": "a hospital's discharge notice: a transaction Bundle (docs/fhir.md)"})
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": instant(utcnow()), "kind": "instance",
        "software": {"name": "hemsync", "version": SERVER_VERSION},
        "implementation": {"description": "hemsync FHIR R4 API", "url": base},
        "fhirVersion": "4.0.1", "format": ["json"],
        "rest": [{"mode": "server",
                  "security": {"description": "Bearer token of an integration client "
                                              "(hemsync-server add-client), limited to its municipalities"},
                  "resource": resources,
                  "operation": [{"name": "export",
                                 "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}]}],
    }
