package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-pipelines/ferry/compiler/plan"
)

// Client talks to the control API of a ferry executor group.
type Client struct {
	base  string
	token string
	owner string
	hc    *http.Client
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithToken sends the bearer token the executors were started with
// (--token-file). Default: none.
func WithToken(token string) ClientOption { return func(c *Client) { c.token = token } }

// WithOwner names the writer in the Ferry-Owner header: "terraform:WS",
// CUEOwner(dir), ... Default: DefaultOwner.
func WithOwner(owner string) ClientOption { return func(c *Client) { c.owner = owner } }

// WithHTTPClient sets the HTTP client. Default: one with a 60s timeout.
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.hc = hc } }

// BaseURL turns an executor's HTTP address, a URL such as
// https://127.0.0.1:8080 or just host:port (http), into the URL its paths
// follow, without a trailing slash.
func BaseURL(endpoint string) (string, error) {
	if endpoint == "" {
		return "", errors.New("no control API address: pass the executor's --http address, such as 127.0.0.1:8080")
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("control API address %q is not host:port or an http(s) URL", endpoint)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// NewClient returns a client of the API at endpoint (see BaseURL).
func NewClient(endpoint string, opts ...ClientOption) (*Client, error) {
	base, err := BaseURL(endpoint)
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:  base,
		owner: DefaultOwner,
		hc:    &http.Client{Timeout: 60 * time.Second},
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Path is the API path of one object, or of a kind's list when name is "".
func Path(kind Kind, name string) string {
	esc := url.PathEscape
	switch kind {
	case Metrics, Alerts:
		if name == "" {
			return "/v1/objects?kind=" + string(kind)
		}
		return "/v1/settings/" + string(kind)
	case CDCSource:
		if name == "" {
			return "/v1/cdc"
		}
		return "/v1/cdc/" + esc(name)
	case CDCTable:
		if name == "" {
			return "/v1/objects?kind=" + string(CDCTable)
		}
		source, table, _ := SplitTableName(name)
		return "/v1/cdc/" + esc(source) + "/tables/" + esc(table)
	}
	p := "/v1/" + string(kind) + "s"
	if name != "" {
		p += "/" + esc(name)
	}
	return p
}

// PutBody is the body of PUT on an object's path.
type PutBody struct {
	Spec    json.RawMessage `json:"spec"`
	Version *int64          `json:"version,omitempty"`
}

// Get returns one object; an *Error with Status 404 when it does not exist
// (see IsNotFound).
func (c *Client) Get(ctx context.Context, kind Kind, name string) (*Object, error) {
	var o Object
	if err := c.do(ctx, http.MethodGet, Path(kind, name), nil, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// List returns the objects of a kind, by name.
func (c *Client) List(ctx context.Context, kind Kind) ([]Object, error) {
	var objs []Object
	err := c.do(ctx, http.MethodGet, Path(kind, ""), nil, &objs)
	return objs, err
}

// Tables returns the tables of a CDC source, by name.
func (c *Client) Tables(ctx context.Context, source string) ([]Object, error) {
	var objs []Object
	err := c.do(ctx, http.MethodGet, "/v1/cdc/"+url.PathEscape(source)+"/tables", nil, &objs)
	return objs, err
}

// Objects returns every stored object in Kinds order.
func (c *Client) Objects(ctx context.Context) ([]Object, error) {
	var objs []Object
	err := c.do(ctx, http.MethodGet, "/v1/objects", nil, &objs)
	return objs, err
}

// Put creates or replaces an object. version is the version last read (0:
// create only); nil writes whatever is stored.
func (c *Client) Put(ctx context.Context, kind Kind, name string, spec any, version *int64) (*Object, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	var o Object
	if err := c.do(ctx, http.MethodPut, Path(kind, name), PutBody{Spec: b, Version: version}, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// Delete removes an object. version is the version last read; nil deletes
// whatever is stored.
func (c *Client) Delete(ctx context.Context, kind Kind, name string, version *int64) error {
	p := Path(kind, name)
	if version != nil {
		p += "?version=" + strconv.FormatInt(*version, 10)
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil)
}

// Batch applies several changes at once, all or none.
func (c *Client) Batch(ctx context.Context, b Batch) (*BatchResult, error) {
	var r BatchResult
	if err := c.do(ctx, http.MethodPost, "/v1/batch", b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Transfer hands an object to another owner, or releases it (to ""), as
// an admin; see Transfer.
func (c *Client) Transfer(ctx context.Context, t Transfer) (*Object, error) {
	var o Object
	if err := c.do(ctx, http.MethodPost, "/v1/transfer", t, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// Plan returns the plan the stored definitions compile to.
func (c *Client) Plan(ctx context.Context) (*plan.Plan, error) {
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/v1/plan", nil, &raw); err != nil {
		return nil, err
	}
	return plan.Decode(raw)
}

// IsNotFound reports whether err is the API's 404.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// NoAnswerError is a request that got no answer, or only part of one: the
// connection failed. A write may have landed all the same.
type NoAnswerError struct{ err error }

func (e *NoAnswerError) Error() string { return e.err.Error() }

// AnswerLost reports whether a request's answer was lost on the way: no
// answer, or a proxy's 502 or 504 in front of the service. A write whose
// answer was lost may have landed.
func AnswerLost(err error) bool {
	var na *NoAnswerError
	s := StatusOf(err)
	return errors.As(err, &na) || s == http.StatusBadGateway || s == http.StatusGatewayTimeout
}

// StatusOf is the HTTP status of an API error, 0 for other errors.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set(OwnerHeader, c.owner)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &NoAnswerError{fmt.Errorf("control API %s: %v", c.base, unwrapURLError(err))}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &NoAnswerError{fmt.Errorf("control API %s: %v", c.base, err)}
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("control API %s %s: %s", method, path, resp.Status)
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control API %s %s: unreadable answer: %v", method, path, err)
	}
	return nil
}

// unwrapURLError drops net/url's "Get \"URL\":" prefix; the caller names
// the endpoint once.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
