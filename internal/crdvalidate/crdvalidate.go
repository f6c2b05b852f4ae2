// Package crdvalidate checks custom resources against the real CustomResourceDefinition of
// their API the way kube-apiserver does on create: unknown fields (pruning), defaults, the
// OpenAPI v3 schema, list-type uniqueness, metadata and the CEL x-kubernetes-validations rules.
// It runs the apiextensions-apiserver code itself, so a manifest that passes here is accepted
// by a cluster serving the same CRD.
package crdvalidate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apivalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// Validator validates objects of one CRD, for every version the CRD serves.
type Validator struct {
	path       string
	group      string
	kind       string
	namespaced bool
	versions   map[string]*version
}

type version struct {
	structural *structuralschema.Structural
	schema     apivalidation.SchemaValidator
	cel        *cel.Validator // nil when the version has no x-kubernetes-validations
}

// Load reads a CRD manifest (YAML or JSON, apiextensions.k8s.io/v1) and prepares a validator
// for each served version.
func Load(crdYAMLPath string) (*Validator, error) {
	data, err := os.ReadFile(crdYAMLPath)
	if err != nil {
		return nil, fmt.Errorf("read CRD: %w", err)
	}
	v, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", crdYAMLPath, err)
	}
	v.path = crdYAMLPath
	return v, nil
}

// Parse is Load for CRD bytes already in memory (e.g. embedded by a Go module).
func Parse(crdYAML []byte) (*Validator, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(crdYAML, &crd); err != nil {
		return nil, fmt.Errorf("decode CustomResourceDefinition: %w", err)
	}
	if crd.Kind != "CustomResourceDefinition" || crd.APIVersion != apiextensionsv1.SchemeGroupVersion.String() {
		return nil, fmt.Errorf("not an apiextensions.k8s.io/v1 CustomResourceDefinition (apiVersion %q, kind %q)", crd.APIVersion, crd.Kind)
	}
	v := &Validator{
		path:       crd.Name,
		group:      crd.Spec.Group,
		kind:       crd.Spec.Names.Kind,
		namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
		versions:   map[string]*version{},
	}
	for i := range crd.Spec.Versions {
		ver := &crd.Spec.Versions[i]
		if !ver.Served {
			continue
		}
		// A CRD may put one schema on spec.validation (v1beta1 style) only through conversion;
		// v1 CRDs carry a schema per version, which is required.
		if ver.Schema == nil || ver.Schema.OpenAPIV3Schema == nil {
			return nil, fmt.Errorf("version %s has no openAPIV3Schema", ver.Name)
		}
		var internal apiextensionsinternal.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(ver.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			return nil, fmt.Errorf("version %s: convert schema: %w", ver.Name, err)
		}
		structural, err := structuralschema.NewStructural(&internal)
		if err != nil {
			return nil, fmt.Errorf("version %s: schema is not structural: %w", ver.Name, err)
		}
		schemaValidator, _, err := apivalidation.NewSchemaValidator(&internal)
		if err != nil {
			return nil, fmt.Errorf("version %s: build schema validator: %w", ver.Name, err)
		}
		v.versions[ver.Name] = &version{
			structural: structural,
			schema:     schemaValidator,
			cel:        cel.NewValidator(structural, true, celconfig.PerCallLimit),
		}
	}
	if len(v.versions) == 0 {
		return nil, errors.New("CRD serves no version")
	}
	return v, nil
}

// Kind is the kind of the objects this validator accepts.
func (v *Validator) Kind() string { return v.kind }

// Validate checks obj as the API server would on create. The version comes from apiVersion.
// obj is not modified (validation runs on a deep copy that gets pruned and defaulted).
// The error lists every problem, each with its field path.
func (v *Validator) Validate(obj map[string]any) error {
	errs := v.validate(obj)
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("%s %s does not match CRD %s: %s", v.kind, describe(obj), v.path, strings.Join(msgs, "; "))
}

func (v *Validator) validate(in map[string]any) field.ErrorList {
	// A JSON round trip gives the exact value types the API server sees (int64/float64,
	// map[string]any, []any) whatever Go types the caller used.
	raw, err := json.Marshal(in)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("encode object: %w", err))}
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("decode object: %w", err))}
	}

	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil || apiVersion == "" {
		return field.ErrorList{field.Invalid(field.NewPath("apiVersion"), apiVersion, "must be "+v.group+"/<version>")}
	}
	var errs field.ErrorList
	if gv.Group != v.group {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), apiVersion, "group must be "+v.group))
	}
	if kind != v.kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), kind, "must be "+v.kind))
	}
	ver, ok := v.versions[gv.Version]
	if !ok {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), apiVersion, v.servedVersions()))
	}
	if len(errs) > 0 {
		return errs
	}

	// Unknown fields: the API server silently prunes them (or rejects them with
	// fieldValidation=Strict); for generated manifests both mean a bug, so report them.
	_, _, metaUnknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		errs = append(errs, field.Invalid(field.NewPath("metadata"), obj["metadata"], err.Error()))
	}
	unknown := append(metaUnknown, structuralpruning.PruneWithOptions(obj, ver.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	sort.Strings(unknown)
	for _, p := range unknown {
		errs = append(errs, &field.Error{Type: field.ErrorTypeNotSupported, Field: p, Detail: "unknown field: the CRD schema has no such property", BadValue: field.OmitValueType{}})
	}
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, ver.structural)
	structuraldefaulting.Default(obj, ver.structural)

	errs = append(errs, v.validateMetadata(obj)...)
	errs = append(errs, apivalidation.ValidateCustomResource(nil, obj, ver.schema)...)
	errs = append(errs, schemaobjectmeta.Validate(context.Background(), nil, obj, ver.structural, false)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, ver.structural, obj)...)
	if ver.cel != nil {
		celErrs, _ := ver.cel.Validate(context.Background(), nil, ver.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}

// validateMetadata applies the generic ObjectMeta rules the API server enforces for every
// custom resource: a DNS-subdomain name, and a namespace exactly when the CRD is namespaced.
func (v *Validator) validateMetadata(obj map[string]any) field.ErrorList {
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	namespace, _ := meta["namespace"].(string)
	p := field.NewPath("metadata")
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), "generated manifests must be named"))
	} else {
		for _, msg := range validation.NameIsDNSSubdomain(name, false) {
			errs = append(errs, field.Invalid(p.Child("name"), name, msg))
		}
	}
	switch {
	case v.namespaced && namespace == "":
		errs = append(errs, field.Required(p.Child("namespace"), v.kind+" is namespaced"))
	case !v.namespaced && namespace != "":
		errs = append(errs, field.Invalid(p.Child("namespace"), namespace, v.kind+" is cluster-scoped: remove the namespace"))
	case namespace != "":
		for _, msg := range validation.ValidateNamespaceName(namespace, false) {
			errs = append(errs, field.Invalid(p.Child("namespace"), namespace, msg))
		}
	}
	return errs
}

func (v *Validator) servedVersions() []string {
	out := make([]string, 0, len(v.versions))
	for name := range v.versions {
		out = append(out, v.group+"/"+name)
	}
	sort.Strings(out)
	return out
}

func describe(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if ns, _ := meta["namespace"].(string); ns != "" {
		return fmt.Sprintf("%q (namespace %q)", name, ns)
	}
	return fmt.Sprintf("%q", name)
}
