package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeSchemas turns a Kubernetes swagger.json (OpenAPI v2) into the JSON
// schemas kubeconform reads: _definitions.json with every definition, and
// one GROUP-VERSION-KIND.json per kind referring into it (the core group is
// named after its version, as kubeconform's {{ .Group }} does: v1-v1-pod.json).
//
// As openapi2jsonschema does for kubeconform's published schemas: objects
// get additionalProperties: false (strict: a misspelt field fails) unless
// they preserve unknown fields or declare their own additionalProperties;
// int-or-string and quantity fields accept both strings and numbers; and
// apiVersion/kind accept the kind's own values.
func writeSchemas(swagger []byte, dir string) (int, error) {
	var spec struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(swagger, &spec); err != nil {
		return 0, fmt.Errorf("swagger.json: %w", err)
	}
	if len(spec.Definitions) == 0 {
		return 0, fmt.Errorf("swagger.json: no definitions")
	}
	for name, def := range spec.Definitions {
		switch {
		case strings.HasSuffix(name, ".util.intstr.IntOrString"):
			spec.Definitions[name] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
		case strings.HasSuffix(name, ".api.resource.Quantity"):
			spec.Definitions[name] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
		default:
			strict(def)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	defs, err := json.Marshal(map[string]any{"definitions": spec.Definitions})
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(dir, "_definitions.json"), defs, 0o644); err != nil {
		return 0, err
	}
	n := 0
	for name, def := range spec.Definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			if kind == "" || version == "" {
				continue
			}
			apiVersion := version
			if group != "" {
				apiVersion = group + "/" + version
			} else {
				group = version
			}
			schema := map[string]any{
				"allOf": []any{map[string]any{"$ref": "_definitions.json#/definitions/" + name}},
				"properties": map[string]any{
					"apiVersion": map[string]any{"enum": []any{apiVersion}},
					"kind":       map[string]any{"enum": []any{kind}},
				},
			}
			b, err := json.Marshal(schema)
			if err != nil {
				return 0, err
			}
			file := strings.ToLower(group + "-" + version + "-" + kind + ".json")
			if err := os.WriteFile(filepath.Join(dir, file), b, 0o644); err != nil {
				return 0, err
			}
			n++
		}
	}
	return n, nil
}

// strict forbids properties a schema object does not declare, recursively.
func strict(schema map[string]any) {
	if props, ok := schema["properties"].(map[string]any); ok {
		if _, has := schema["additionalProperties"]; !has && schema["x-kubernetes-preserve-unknown-fields"] != true {
			schema["additionalProperties"] = false
		}
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				strict(m)
			}
		}
	}
	if items, ok := schema["items"].(map[string]any); ok {
		strict(items)
	}
	if ap, ok := schema["additionalProperties"].(map[string]any); ok {
		strict(ap)
	}
}
