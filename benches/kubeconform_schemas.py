"""Writes JSON Schemas for kubeconform from the Kubernetes OpenAPI v3 documents kdeploy embeds, for
the benchmark only: one standalone file per kind asked for, named as the -schema-location template
`{{ .ResourceKind }}-{{ .Group }}-{{ .ResourceAPIVersion }}.json` reads it, every definition inside
it, and objects with properties closed to others (kubeconform's "strict" schemas).

    python3 kubeconform_schemas.py EMBEDDED.json.gz OUT_DIR Deployment:apps/v1 Service:v1 ...
"""
import gzip
import json
import sys


def strict(schema):
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/definitions/")
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def main():
    source, out_dir, *kinds = sys.argv[1:]
    definitions = json.loads(gzip.open(source).read())["definitions"]
    definitions = {name: strict(schema) for name, schema in definitions.items()}
    for wanted in kinds:
        kind, api_version = wanted.split(":")
        group, _, version = api_version.rpartition("/")
        name = next(
            n for n, s in definitions.items()
            if any(g["kind"] == kind and g["group"] == group and g["version"] == version
                   for g in s.get("x-kubernetes-group-version-kind", []))
        )
        document = {"$schema": "http://json-schema.org/draft-07/schema#", "$ref": f"#/definitions/{name}", "definitions": definitions}
        first = group.split(".")[0] if group else version
        with open(f"{out_dir}/{kind.lower()}-{first}-{version}.json", "w") as f:
            json.dump(document, f)


main()
