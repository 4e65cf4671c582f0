package provider

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/ferry-pipelines/ferry/schema"
)

// The patterns of ferry's schema (schema/schema.cue), taken from it and
// checked as early as `terraform validate`. Everything else (references,
// placement, duplicate topics) is the compiler's, checked during
// `terraform plan`.
var (
	namePattern     = regexp.MustCompile(schema.Pattern("#Name"))
	addressPattern  = regexp.MustCompile(schema.Pattern("#Address"))
	topicPattern    = regexp.MustCompile(schema.Pattern("#Topic"))
	sourcePattern   = regexp.MustCompile(schema.Pattern("#SourceName"))
	tablePattern    = regexp.MustCompile(schema.Pattern("#TableName"))
	envPattern      = regexp.MustCompile(schema.Pattern("#EnvName"))
	durationPattern = regexp.MustCompile(schema.Pattern("#Duration"))
)

// The provider's own patterns: of its settings, not of definitions.
var (
	regexpNotEmpty  = regexp.MustCompile(`\S`)
	endpointPattern = regexp.MustCompile(`^(https?://)?[^/\s]+(/\S*)?$`)
	ownerPattern    = regexp.MustCompile(`^[[:graph:]]{1,200}$`)
)

// describe gives a validator the Describer methods.
type describe string

func (d describe) Description(context.Context) string         { return string(d) }
func (d describe) MarkdownDescription(context.Context) string { return string(d) }

// matches checks a string (or each string of a list) against a pattern;
// want says in words what a valid value looks like.
type matches struct {
	describe
	re *regexp.Regexp
}

func matching(re *regexp.Regexp, want string) matches {
	return matches{describe(want), re}
}

func (v matches) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if s := req.ConfigValue; !s.IsNull() && !s.IsUnknown() && !v.re.MatchString(s.ValueString()) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid value", fmt.Sprintf("%q is not %s", s.ValueString(), v.describe))
	}
}

func (v matches) ValidateList(_ context.Context, req validator.ListRequest, resp *validator.ListResponse) {
	for i, e := range known(req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown(), req.ConfigValue.Elements()) {
		if s, ok := e.(types.String); ok && !s.IsUnknown() && !v.re.MatchString(s.ValueString()) {
			resp.Diagnostics.AddAttributeError(req.Path.AtListIndex(i), "Invalid value", fmt.Sprintf("%q is not %s", s.ValueString(), v.describe))
		}
	}
}

// oneOf checks a string is one of a few values.
type oneOf []string

func (v oneOf) Description(context.Context) string { return "one of " + strings.Join(v, ", ") }
func (v oneOf) MarkdownDescription(ctx context.Context) string {
	return "one of `" + strings.Join(v, "`, `") + "`"
}

func (v oneOf) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if s := req.ConfigValue; !s.IsNull() && !s.IsUnknown() && !slices.Contains(v, s.ValueString()) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid value", fmt.Sprintf("%q is not %s", s.ValueString(), v.Description(ctx)))
	}
}

// bounds checks an integer against the bounds the schema gives path.
func bounds(path string) between {
	lo, hi := schema.Bounds(path)
	return between{lo, hi}
}

// between checks an integer (or each integer of a list) lies in [min, max].
type between struct{ min, max int64 }

func (v between) Description(context.Context) string {
	if v.max == 0 {
		return fmt.Sprintf("at least %d", v.min)
	}
	return fmt.Sprintf("from %d to %d", v.min, v.max)
}
func (v between) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v between) bad(n types.Int64) bool {
	return !n.IsNull() && !n.IsUnknown() && (n.ValueInt64() < v.min || (v.max != 0 && n.ValueInt64() > v.max))
}

func (v between) ValidateInt64(ctx context.Context, req validator.Int64Request, resp *validator.Int64Response) {
	if v.bad(req.ConfigValue) {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid value", fmt.Sprintf("%d is not %s", req.ConfigValue.ValueInt64(), v.Description(ctx)))
	}
}

func (v between) ValidateList(ctx context.Context, req validator.ListRequest, resp *validator.ListResponse) {
	for i, e := range known(req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown(), req.ConfigValue.Elements()) {
		if n, ok := e.(types.Int64); ok && v.bad(n) {
			resp.Diagnostics.AddAttributeError(req.Path.AtListIndex(i), "Invalid value", fmt.Sprintf("%d is not %s", n.ValueInt64(), v.Description(ctx)))
		}
	}
}

// atLeast checks a list has at least n elements.
type atLeast int

func (v atLeast) Description(context.Context) string {
	return fmt.Sprintf("at least %d element(s) when set (omit it rather than leave it empty)", int(v))
}
func (v atLeast) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v atLeast) ValidateList(ctx context.Context, req validator.ListRequest, resp *validator.ListResponse) {
	if c := req.ConfigValue; !c.IsNull() && !c.IsUnknown() && len(c.Elements()) < int(v) {
		resp.Diagnostics.AddAttributeError(req.Path, "Too few elements", fmt.Sprintf("%d element(s); want %s", len(c.Elements()), v.Description(ctx)))
	}
}

// exactlyOne checks an object sets exactly one of its attributes: a secret
// reference is an environment variable or a file, never both.
type exactlyOne []string

func (v exactlyOne) Description(context.Context) string {
	return "exactly one of " + strings.Join(v, ", ")
}
func (v exactlyOne) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v exactlyOne) ValidateObject(ctx context.Context, req validator.ObjectRequest, resp *validator.ObjectResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	set := 0
	for _, name := range v {
		a := req.ConfigValue.Attributes()[name]
		if a == nil || a.IsUnknown() {
			return
		}
		if !a.IsNull() {
			set++
		}
	}
	if set != 1 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid secret reference", fmt.Sprintf("set %s", v.Description(ctx)))
	}
}

// known returns the elements of a collection, none when it is null or
// unknown.
func known(nullOrUnknown bool, elems []attr.Value) []attr.Value {
	if nullOrUnknown {
		return nil
	}
	return elems
}
