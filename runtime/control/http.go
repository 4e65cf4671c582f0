package control

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ferry-pipelines/ferry/runtime/control/api"
)

// maxBody bounds a request body: a batch of every object of a large
// definition set fits.
const maxBody = 32 << 20

// Handler serves the control API under /v1/, as docs/control-api.md
// documents it. With WithToken, every request needs the bearer token.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.HandleFunc("GET "+rt.list, s.list(rt))
		mux.HandleFunc("GET "+rt.one, s.get(rt))
		mux.HandleFunc("PUT "+rt.one, s.put(rt))
		mux.HandleFunc("DELETE "+rt.one, s.delete(rt))
	}
	for _, rt := range settingsRoutes {
		one := "/v1/settings/" + string(rt.kind)
		mux.HandleFunc("GET "+one, s.get(rt))
		mux.HandleFunc("PUT "+one, s.put(rt))
		mux.HandleFunc("DELETE "+one, s.delete(rt))
	}
	mux.HandleFunc("GET /v1/objects", s.listObjects)
	mux.HandleFunc("GET /v1/definitions", s.definitions)
	mux.HandleFunc("GET /v1/plan", s.compiledPlan)
	mux.HandleFunc("POST /v1/batch", s.batch)
	mux.HandleFunc("POST /v1/transfer", s.transfer)
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 0, nil, api.Errorf(http.StatusNotFound, "%s %q is not a method and path of the control API (docs/control-api.md, \"Endpoints\", lists them)", r.Method, r.URL.Path))
	})
	if len(s.tokens) == 0 {
		return mux
	}
	return requireToken(s.tokens, mux)
}

// route maps the paths of one kind to its objects.
type route struct {
	kind api.Kind
	list string // GET lists the kind's objects
	one  string // GET, PUT and DELETE one object
	// name returns the object's name from the request's path values.
	name func(r *http.Request) string
	// in reports whether a listed object belongs to the list requested.
	in func(r *http.Request, o api.Object) bool
}

func byName(r *http.Request) string { return r.PathValue("name") }

func tableName(r *http.Request) string {
	return api.TableName(r.PathValue("source"), r.PathValue("table"))
}

func anyObject(*http.Request, api.Object) bool { return true }

func ofSource(r *http.Request, o api.Object) bool {
	source, _, _ := api.SplitTableName(o.Name)
	return source == r.PathValue("source")
}

var routes = []route{
	{api.Datacenter, "/v1/datacenters", "/v1/datacenters/{name}", byName, anyObject},
	{api.Shard, "/v1/shards", "/v1/shards/{name}", byName, anyObject},
	{api.Tier, "/v1/tiers", "/v1/tiers/{name}", byName, anyObject},
	{api.Group, "/v1/groups", "/v1/groups/{name}", byName, anyObject},
	{api.Mirror, "/v1/mirrors", "/v1/mirrors/{name}", byName, anyObject},
	{api.CDCSource, "/v1/cdc", "/v1/cdc/{name}", byName, anyObject},
	{api.CDCTable, "/v1/cdc/{source}/tables", "/v1/cdc/{source}/tables/{table}", tableName, ofSource},
}

// settingsRoutes are the kinds of one object each, under /v1/settings/.
var settingsRoutes = []route{
	{kind: api.Metrics, name: func(*http.Request) string { return api.MetricsName }},
	{kind: api.Alerts, name: func(*http.Request) string { return api.AlertsName }},
}

func (s *Service) list(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		objs, aerr := s.objects(r.Context(), func(o api.Object) bool { return o.Kind == rt.kind && rt.in(r, o) })
		reply(w, http.StatusOK, objs, aerr)
	}
}

func (s *Service) listObjects(w http.ResponseWriter, r *http.Request) {
	kind := api.Kind(r.URL.Query().Get("kind"))
	if kind != "" && !kind.Valid() {
		reply(w, 0, nil, api.Errorf(http.StatusBadRequest, "unknown kind %q (kinds: %s)", string(kind), api.KindNames()))
		return
	}
	objs, aerr := s.objects(r.Context(), func(o api.Object) bool { return kind == "" || o.Kind == kind })
	reply(w, http.StatusOK, objs, aerr)
}

func (s *Service) get(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o, aerr := s.object(r.Context(), rt.kind, rt.name(r))
		reply(w, http.StatusOK, o, aerr)
	}
}

func (s *Service) put(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body api.PutBody
		if aerr := readJSON(w, r, &body); aerr != nil {
			reply(w, 0, nil, aerr)
			return
		}
		s.writeOne(w, r, api.Op{Op: api.OpPut, Kind: rt.kind, Name: rt.name(r), Spec: body.Spec, Version: body.Version})
	}
}

func (s *Service) delete(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		op := api.Op{Op: api.OpDelete, Kind: rt.kind, Name: rt.name(r)}
		if v := r.URL.Query().Get("version"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				reply(w, 0, nil, api.Errorf(http.StatusBadRequest, "version %q is not a version number", v))
				return
			}
			op.Version = &n
		}
		s.writeOne(w, r, op)
	}
}

// writeOne applies one op and answers with the object as stored (201 when
// created), or the deletion's result.
func (s *Service) writeOne(w http.ResponseWriter, r *http.Request, op api.Op) {
	owner, aerr := ownerOf(r)
	if aerr != nil {
		reply(w, 0, nil, aerr)
		return
	}
	res, aerr := s.apply(r.Context(), owner, api.Batch{Ops: []api.Op{op}})
	if aerr != nil {
		reply(w, 0, nil, aerr)
		return
	}
	result := res.Results[0]
	if result.Action == api.Deleted {
		reply(w, http.StatusOK, result, nil)
		return
	}
	status := http.StatusOK
	if result.Action == api.Created {
		status = http.StatusCreated
	}
	o, aerr := s.object(r.Context(), op.Kind, op.Name)
	reply(w, status, o, aerr)
}

func (s *Service) batch(w http.ResponseWriter, r *http.Request) {
	owner, aerr := ownerOf(r)
	if aerr != nil {
		reply(w, 0, nil, aerr)
		return
	}
	var b api.Batch
	if aerr := readJSON(w, r, &b); aerr != nil {
		reply(w, 0, nil, aerr)
		return
	}
	res, aerr := s.apply(r.Context(), owner, b)
	reply(w, http.StatusOK, res, aerr)
}

// definitions answers with the stored objects assembled into one
// definition set, in the shape of a compiled directory's definitions.
func (s *Service) definitions(w http.ResponseWriter, r *http.Request) {
	objs, aerr := s.objects(r.Context(), func(api.Object) bool { return true })
	if aerr != nil {
		reply(w, 0, nil, aerr)
		return
	}
	defs, err := api.Join(objs)
	if err != nil {
		reply(w, 0, nil, api.Errorf(http.StatusInternalServerError, "%v", err))
		return
	}
	reply(w, http.StatusOK, defs, nil)
}

// compiledPlan compiles what is stored now, so the answer includes every
// write made before the request, even one this executor has not yet
// handed to its runner.
func (s *Service) compiledPlan(w http.ResponseWriter, r *http.Request) {
	objs, err := s.catchUp(r.Context(), false)
	if err != nil {
		reply(w, 0, nil, unavailable(err))
		return
	}
	p, aerr := s.memo.compile(objs, s.last())
	if aerr != nil {
		reply(w, 0, nil, &api.Error{Status: http.StatusInternalServerError, Message: aerr.Message, Problems: aerr.Problems})
		return
	}
	cp := *p // Encode sorts the jobs in place; p may be the runner's
	cp.Jobs = slices.Clone(p.Jobs)
	b, err := cp.Encode()
	if err != nil {
		reply(w, 0, nil, api.Errorf(http.StatusInternalServerError, "encode plan: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// ownerOf is the writer named by the Ferry-Owner header.
func ownerOf(r *http.Request) (string, *api.Error) {
	owner := r.Header.Get(api.OwnerHeader)
	if owner == "" {
		return api.DefaultOwner, nil
	}
	if len(owner) > 200 {
		return "", api.Errorf(http.StatusBadRequest, "%s header is longer than 200 characters", api.OwnerHeader)
	}
	for _, c := range owner {
		if !unicode.IsPrint(c) {
			return "", api.Errorf(http.StatusBadRequest, "%s header holds a non-printable character", api.OwnerHeader)
		}
	}
	if g, ok := grantOf(r.Context()); ok && !g.allows(owner) {
		return "", api.Errorf(http.StatusForbidden, "this token may write as %s, not as %s (%s header; the token file binds each token to its owners)",
			strings.Join(g, ", "), owner, api.OwnerHeader)
	}
	return owner, nil
}

// transfer hands an object to another owner, or releases it (to ""), for
// whoever writes it next to adopt; its spec, and so its jobs, stay. Only
// an admin may.
func (s *Service) transfer(w http.ResponseWriter, r *http.Request) {
	if g, ok := grantOf(r.Context()); ok && !g.admin() {
		reply(w, 0, nil, api.Errorf(http.StatusForbidden, "a transfer needs an admin token (one whose line in the token file has no owners, or *)"))
		return
	}
	var t api.Transfer
	if aerr := readJSON(w, r, &t); aerr != nil {
		reply(w, 0, nil, aerr)
		return
	}
	if err := checkName(t.Kind, t.Name); err != nil {
		reply(w, 0, nil, err)
		return
	}
	if _, aerr := s.write(r.Context(), false, t.To, func(objs map[string]api.Object) (*change, *api.Error) {
		return handOver(objs, t, time.Now().UTC())
	}); aerr != nil {
		reply(w, 0, nil, aerr)
		return
	}
	o, aerr := s.object(r.Context(), t.Kind, t.Name)
	reply(w, http.StatusOK, o, aerr)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) *api.Error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return api.Errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxBody)
		}
		return api.Errorf(http.StatusBadRequest, "request body is not the expected JSON: %v", err)
	}
	return nil
}

// reply writes v as JSON with status, or aerr.
func reply(w http.ResponseWriter, status int, v any, aerr *api.Error) {
	if aerr != nil {
		status, v = aerr.Status, aerr
	}
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.Error{Message: "encode answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
