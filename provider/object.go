package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// model is the Terraform model of one kind of stored object. Every model
// has the attributes id (the object's name) and version.
type model interface {
	// objectName is the stored object's name, from the configured
	// attributes, and whether they are known (at plan time they may not
	// be, when they refer to another object's computed value).
	objectName() (string, bool)
	// spec is the object's spec: its schema type (schema.Mirror, ...).
	spec() any
	// load sets the attributes from a stored object's spec and name.
	load(o *api.Object) error
	// meta returns the id and version attributes.
	meta() (id *types.String, version *types.Int64)
	// limits returns the timeouts attribute.
	limits() *timeouts.Value
}

// common are the attributes every model has: the object's name as id,
// its stored version, and the resource's write timeouts.
type common struct {
	ID       types.String   `tfsdk:"id"`
	Version  types.Int64    `tfsdk:"version"`
	Timeouts timeouts.Value `tfsdk:"timeouts"`
}

func (c *common) meta() (*types.String, *types.Int64) { return &c.ID, &c.Version }

func (c *common) limits() *timeouts.Value { return &c.Timeouts }

// objectResource is a resource of one kind of stored object: create,
// read, update, delete and import all map to the control API the same way
// for every kind; the kind's model maps attributes to its spec.
type objectResource[M any, P interface {
	*M
	model
}] struct {
	kind     api.Kind
	typeName string // after "ferry_"
	schema   schema.Schema
	client   *client
}

// newObjectResource builds a resource of kind with the kind's own
// attributes; id and version are added.
func newObjectResource[M any, P interface {
	*M
	model
}](kind api.Kind, typeName, description string, attrs map[string]schema.Attribute) *objectResource[M, P] {
	attrs["id"] = schema.StringAttribute{
		Computed:            true,
		MarkdownDescription: "The object's name in the control API, which `terraform import` takes.",
		PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
	}
	wait := func(what string) string {
		return "How long " + what + " is tried again while the executors refuse it (the run's other changes not yet " +
			"applied) or are busy, a duration such as `2m`. Default: `30s`."
	}
	limits := timeouts.Attributes(context.Background(), timeouts.Opts{
		Create: true, Update: true, Delete: true,
		CreateDescription: wait("the creation"), UpdateDescription: wait("an update"), DeleteDescription: wait("the deletion"),
	}).(schema.SingleNestedAttribute)
	limits.MarkdownDescription = "How long apply tries each write again: `{ create = \"2m\", update = \"2m\", delete = \"2m\" }`."
	attrs["timeouts"] = limits
	attrs["version"] = schema.Int64Attribute{
		Computed: true,
		MarkdownDescription: "The stored object's version: 1 when created, one more per update. Updates and deletions " +
			"send the version Terraform last read, so a change made elsewhere since is refused rather than overwritten.",
	}
	if _, ok := any(new(M)).(placedModel); ok {
		attrs["jobs"] = jobsAttribute()
	}
	return &objectResource[M, P]{
		kind:     kind,
		typeName: typeName,
		schema:   schema.Schema{MarkdownDescription: description, Attributes: attrs},
	}
}

var (
	_ resource.ResourceWithConfigure   = (*objectResource[mirrorModel, *mirrorModel])(nil)
	_ resource.ResourceWithImportState = (*objectResource[mirrorModel, *mirrorModel])(nil)
	_ resource.ResourceWithModifyPlan  = (*objectResource[mirrorModel, *mirrorModel])(nil)
)

func (r *objectResource[M, P]) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_" + r.typeName
}

func (r *objectResource[M, P]) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = r.schema
}

func (r *objectResource[M, P]) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if c, ok := req.ProviderData.(*client); ok {
		r.client = c
	}
}

func (r *objectResource[M, P]) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m M
	if resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...); resp.Diagnostics.HasError() {
		return
	}
	patience, d := P(&m).limits().Create(ctx, applyPatience)
	if resp.Diagnostics.Append(d...); resp.Diagnostics.HasError() {
		return
	}
	r.put(ctx, &m, 0, patience, &resp.State, &resp.Diagnostics)
}

// put writes the planned object based on version (0: create only),
// trying again for up to patience (see patiently), and sets the new
// state.
func (r *objectResource[M, P]) put(ctx context.Context, m *M, base int64, patience time.Duration, state *tfsdk.State, diags *diag.Diagnostics) {
	name, _ := P(m).objectName()
	var o *api.Object
	lost := false // an earlier try's answer was lost: it may have landed
	err := patiently(ctx, patience, func() (err error) {
		o, err = r.client.Put(ctx, r.kind, name, P(m).spec(), &base)
		if lost && api.StatusOf(err) == http.StatusConflict {
			o, err = r.landed(ctx, name, P(m).spec(), err)
		}
		lost = lost || api.AnswerLost(err)
		return err
	})
	r.client.applied(r.kind, name)
	if err != nil {
		diags.Append(r.refused(r.kind, name, err))
		return
	}
	id, version := P(m).meta()
	*id, *version = types.StringValue(name), types.Int64Value(o.Version)
	diags.Append(setJobs(ctx, r.client, r.kind, name, P(m), true)...)
	diags.Append(state.Set(ctx, m)...)
}

// Read sets every attribute from the stored object, so the state holds
// what is stored, whatever changed it; after an import only id is known.
func (r *objectResource[M, P]) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var stateID types.String
	if resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("id"), &stateID)...); resp.Diagnostics.HasError() {
		return
	}
	name := stateID.ValueString()
	o, err := r.client.Get(ctx, r.kind, name)
	if api.IsNotFound(err) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.Append(refused(r.kind, name, err))
		return
	}
	if o.Owner != r.client.owner && o.Owner != "" { // released: the next write adopts it
		resp.Diagnostics.AddError(fmt.Sprintf("%s is not %s's", api.Describe(r.kind, name), r.client.owner),
			api.OwnedElsewhere(r.kind, name, o.Owner))
		return
	}
	// load starts from the prior state, to keep what the API cannot tell
	// from nothing (an empty map); after an import, from nothing.
	var m M
	if req.State.Get(ctx, &m).HasError() {
		m = *new(M)
		resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("timeouts"), P(&m).limits())...)
	}
	if err := P(&m).load(o); err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("Unreadable %s", api.Describe(r.kind, name)), err.Error())
		return
	}
	id, version := P(&m).meta()
	*id, *version = stateID, types.Int64Value(o.Version)
	resp.Diagnostics.Append(setJobs(ctx, r.client, r.kind, name, P(&m), false)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *objectResource[M, P]) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m, prior M
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	_, priorVersion := P(&prior).meta()
	patience, d := P(&m).limits().Update(ctx, applyPatience)
	if resp.Diagnostics.Append(d...); resp.Diagnostics.HasError() {
		return
	}
	r.put(ctx, &m, priorVersion.ValueInt64(), patience, &resp.State, &resp.Diagnostics)
}

func (r *objectResource[M, P]) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m M
	if resp.Diagnostics.Append(req.State.Get(ctx, &m)...); resp.Diagnostics.HasError() {
		return
	}
	id, version := P(&m).meta()
	name := id.ValueString()
	base := version.ValueInt64()
	patience, d := P(&m).limits().Delete(ctx, applyPatience)
	if resp.Diagnostics.Append(d...); resp.Diagnostics.HasError() {
		return
	}
	err := patiently(ctx, patience, func() error { return r.client.Delete(ctx, r.kind, name, &base) })
	r.client.applied(r.kind, name)
	if err != nil && !api.IsNotFound(err) {
		resp.Diagnostics.Append(refused(r.kind, name, err))
	}
}

// applyPatience is how long, unless the resource's timeouts say
// otherwise, a write at apply time is tried again while
// the compiler refuses it (400), the executors are busy (503) or its
// answer was lost (api.AnswerLost). Terraform
// applies unrelated resources in parallel, in no set order: a mirror
// written before the datacenters it runs between, a shard deleted before
// the mirrors placed on it, are refused until the run's other changes
// land. The plan has checked the whole set, so such a refusal passes.
// A write whose answer was lost may have landed: its next try then meets
// the version it made (409), which put reconciles (see landed).
var applyPatience = 30 * time.Second

// patiently runs write until it succeeds, fails otherwise, or patience
// has passed.
func patiently(ctx context.Context, patience time.Duration, write func() error) error {
	deadline := time.Now().Add(patience)
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := write()
		s := api.StatusOf(err)
		again := s == http.StatusBadRequest || s == http.StatusServiceUnavailable || api.AnswerLost(err)
		if err == nil || !again || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// landed is the stored object when it is what an earlier try, whose
// answer was lost, wrote (this owner's, this spec): that try landed and
// moved the version the next one named. Otherwise conflict stands.
func (r *objectResource[M, P]) landed(ctx context.Context, name string, spec any, conflict error) (*api.Object, error) {
	o, err := r.client.Get(ctx, r.kind, name)
	if err != nil || o.Owner != r.client.owner {
		return nil, conflict
	}
	want, err := jsonOf(spec)
	if err != nil || !sameJSON(want, o.Spec) {
		return nil, conflict
	}
	return o, nil
}

// sameJSON reports whether two JSON documents hold the same values,
// whatever their key order and spacing.
func sameJSON(a, b []byte) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

// ImportState takes the object's name ("SOURCE/DB.TABLE" for a CDC table)
// and adopts the object if its owner released it (see api.Transfer),
// rewriting it unchanged as this configuration's; Read fills in the rest
// and refuses an object another owner holds.
func (r *objectResource[M, P]) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if o, err := r.client.Get(ctx, r.kind, req.ID); err == nil && o.Owner == "" {
		if _, err := r.client.Put(ctx, r.kind, req.ID, o.Spec, &o.Version); err != nil {
			resp.Diagnostics.Append(refused(r.kind, req.ID, err))
			return
		}
	}
	resource.ImportStatePassthroughID(ctx, path.Root("id"), req, resp)
}

// ModifyPlan checks the planned object with the control API's compiler,
// together with the other changes planned in this run (see client).
func (r *objectResource[M, P]) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.client == nil {
		return
	}
	var prior M
	priorName := ""
	if !req.State.Raw.IsNull() {
		if resp.Diagnostics.Append(req.State.Get(ctx, &prior)...); resp.Diagnostics.HasError() {
			return
		}
		id, _ := P(&prior).meta()
		priorName = id.ValueString()
		// This configuration's state holds it: a replacement's create,
		// planned next with no prior state, finds it stored.
		r.client.held(r.kind, priorName)
	}
	if req.Plan.Raw.IsNull() {
		resp.Diagnostics.Append(r.check(ctx, api.Op{Op: api.OpDelete, Kind: r.kind, Name: priorName}))
		return
	}
	if req.Plan.Raw.Equal(req.State.Raw) {
		return // unchanged: the stored object holds it already
	}
	var m M
	if resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...); resp.Diagnostics.HasError() {
		return
	}
	name, known := P(&m).objectName()
	if id, _ := P(&m).meta(); known && id.IsUnknown() {
		// The id is the name: known now, so that objects referring to
		// this one by id are known at plan time too.
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("id"), types.StringValue(name))...)
	}
	if known && req.State.Raw.IsNull() {
		if resp.Diagnostics.Append(r.checkNew(ctx, name)...); resp.Diagnostics.HasError() {
			return
		}
	}
	if !known {
		r.client.notKnown()
		return
	}
	open := openAttrs{kind: r.kind, name: name, attrs: r.schema.Attributes, names: unknownAttributes(req.Plan.Raw, "id", "version", "jobs")}
	if priorName != "" && priorName != name { // replaced under a new name
		resp.Diagnostics.Append(r.check(ctx, api.Op{Op: api.OpDelete, Kind: r.kind, Name: priorName}))
	}
	// Unknown values are left out of the spec (their zero values).
	spec, err := jsonOf(P(&m).spec())
	if err != nil {
		resp.Diagnostics.AddError("Invalid "+api.Describe(r.kind, name), err.Error())
		return
	}
	resp.Diagnostics.Append(r.checkOpen(ctx, api.Op{Op: api.OpPut, Kind: r.kind, Name: name, Spec: spec}, open))
}

// checkNew refuses, at plan time, to create what apply would refuse: an
// object that exists already (another state's, or one not imported) and a
// name a second resource of this configuration also creates.
func (r *objectResource[M, P]) checkNew(ctx context.Context, name string) diag.Diagnostics {
	var diags diag.Diagnostics
	// The attribute that names the object; the settings objects have none.
	at, named := path.Root("name"), true
	switch r.kind {
	case api.CDCTable:
		at = path.Root("table")
	case api.Tier:
		at = path.Root("tier")
	case api.Metrics, api.Alerts:
		named = false
	}
	report := func(summary, detail string) {
		if named {
			diags.AddAttributeError(at, summary, detail)
		} else {
			diags.AddError(summary, detail)
		}
	}
	what := api.Describe(r.kind, name)
	held, first := r.client.creating(r.kind, name)
	if !first {
		report("Duplicate "+what, fmt.Sprintf("Two resources of this configuration create %s: give one of them another name.", what))
		return diags
	}
	o, err := r.client.Get(ctx, r.kind, name)
	switch {
	case err == nil && o.Owner != r.client.owner && o.Owner != "":
		// The dry run refuses it, naming the owner.
	case err == nil && held:
	case err == nil:
		report(what+" exists already",
			fmt.Sprintf("%s is stored already (owner %s, version %d): import it (terraform import ferry_%s.NAME %s) if it is this configuration's, or choose another name.",
				what, o.Owner, o.Version, r.typeName, name))
	case !api.IsNotFound(err):
		diags.Append(refused(r.kind, name, err))
	}
	return diags
}

func (r *objectResource[M, P]) check(ctx context.Context, op api.Op) diag.Diagnostic {
	return r.checkOpen(ctx, op, openAttrs{})
}

// checkOpen checks op, whose open attributes are not known yet.
func (r *objectResource[M, P]) checkOpen(ctx context.Context, op api.Op, open openAttrs) diag.Diagnostic {
	if err := r.client.check(ctx, op, open); err != nil {
		return r.refused(op.Kind, op.Name, err)
	}
	return nil
}

// refused is refused's diagnostic, on the attribute the compiler's problem
// names when it is about this resource's object.
func (r *objectResource[M, P]) refused(kind api.Kind, name string, err error) diag.Diagnostic {
	d := refused(kind, name, err)
	if kind != r.kind {
		return d
	}
	if p, ok := attributeOf(r.schema.Attributes, kind, name, err); ok {
		return diag.NewAttributeErrorDiagnostic(p, d.Summary(), d.Detail())
	}
	return d
}

// refused turns an API error into a diagnostic whose detail is the API's
// message: the compiler's problems, the owner, the version conflict.
func refused(kind api.Kind, name string, err error) diag.Diagnostic {
	summary := "ferry control API error"
	switch api.StatusOf(err) {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusConflict, http.StatusNotFound:
		summary = "ferry refused " + api.Describe(kind, name)
	}
	return diag.NewErrorDiagnostic(summary, err.Error())
}

// unknownAttributes are the top-level attributes of v, but skip, that
// hold a value not known yet.
func unknownAttributes(v tftypes.Value, skip ...string) map[string]bool {
	out := map[string]bool{}
	_ = tftypes.Walk(v, func(p *tftypes.AttributePath, v tftypes.Value) (bool, error) {
		steps := p.Steps()
		if len(steps) == 0 {
			return true, nil
		}
		a, ok := steps[0].(tftypes.AttributeName)
		if !ok || slices.Contains(skip, string(a)) || out[string(a)] {
			return false, nil
		}
		if !v.IsKnown() {
			out[string(a)] = true
			return false, nil
		}
		return true, nil
	})
	return out
}

// rootName is the top-level attribute of a path.
func rootName(p path.Path) string {
	if steps := p.Steps(); len(steps) > 0 {
		if a, ok := steps[0].(path.PathStepAttributeName); ok {
			return string(a)
		}
	}
	return ""
}
