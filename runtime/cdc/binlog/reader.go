// Package binlog reads a MySQL or MariaDB binlog as a replica does
// (go-mysql's BinlogSyncer) and hands out whole transactions of row
// changes with their positions. Column names, types, signedness, charsets
// and ENUM/SET members come from the TABLE_MAP events
// (binlog_row_metadata=FULL), never from the live schema, so a row is
// always read with the columns it was written with, whatever ALTER TABLE
// ran since.
package binlog

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/ferry-pipelines/ferry/runtime/cdc/event"
)

// Config is how to reach the server.
type Config struct {
	Addr     string // host:port
	User     string
	Password string
	ServerID uint32 // the replica server_id ferry registers with
	Flavor   string // "mysql" or "mariadb"; "" detects
	TLS      *tls.Config
	Logger   *slog.Logger
	// RawYears writes DATE and DATETIME years 0-99 as stored, as
	// Debezium's enable.time.adjuster=false (see event.Column.RawYears).
	RawYears bool
	// Keys names, per table ("db.table"), the columns that replace its
	// primary key as the events' key (Debezium's message.key.columns).
	Keys map[string][]string
}

// Position is a place in the binlog: a file and an offset on the server
// Origin names, plus the GTID set executed up to there where the server
// has GTIDs (which name the place on any server that has them).
type Position struct {
	File string `json:"file"`
	Pos  uint64 `json:"pos"`
	GTID string `json:"gtid,omitempty"`
	Origin
}

func (p Position) String() string { return p.File + ":" + strconv.FormatUint(p.Pos, 10) }

// Compare orders positions by file sequence number, then offset.
func (p Position) Compare(q Position) int {
	if c := compareFiles(p.File, q.File); c != 0 {
		return c
	}
	switch {
	case p.Pos < q.Pos:
		return -1
	case p.Pos > q.Pos:
		return 1
	}
	return 0
}

func compareFiles(a, b string) int {
	if a == b {
		return 0
	}
	ia, ea := fileSeq(a)
	ib, eb := fileSeq(b)
	if ea == nil && eb == nil && strings.TrimRight(a, "0123456789") == strings.TrimRight(b, "0123456789") {
		switch {
		case ia < ib:
			return -1
		case ia > ib:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}

func fileSeq(f string) (int64, error) {
	i := strings.LastIndexByte(f, '.')
	return strconv.ParseInt(f[i+1:], 10, 64)
}

// Rows is one row change of a table in a transaction.
type Rows struct {
	Table  *event.Table
	Op     byte // event.OpCreate, OpUpdate, OpDelete
	Before []any
	After  []any
	Pos    uint64 // the rows event's position
	Row    int    // index of the row in its rows event
	// Err says why the rows event cannot be read (its table's TABLE_MAP
	// or its values): Before and After are nil and Event holds the
	// event's bytes, for a dead letter. Only that table's changes fail.
	Err   error
	Event []byte
}

// Txn is a committed transaction: its row changes in order and the position
// right after its commit, where reading can resume.
type Txn struct {
	GTID     string
	File     string
	ServerID uint32 // the server that wrote the transaction
	Thread   int64
	// Time is the commit time: the GTID event's microsecond commit
	// timestamp on MySQL 8, else the binlog header's (whole seconds).
	Time time.Time
	// Micro reports whether Time has microsecond precision.
	Micro bool
	Rows  []Rows
	Next  Position // resume here
	// Received is when the commit event arrived.
	Received time.Time
	// Bytes is the binlog size of the transaction's events.
	Bytes int
}

// Reader streams transactions from a position.
type Reader struct {
	cfg    Config
	flavor string
	syncer *replication.BinlogSyncer
	stream *replication.BinlogStreamer
	pos    Position
	gtids  mysql.GTIDSet
	origin Origin // the server read from
	file   string // the binlog file being read
	tables map[uint64]*event.Table
	// charsets names the character set of each of the server's collations
	charsets event.Charsets
	// floats holds, per table read ("db.table"), its FLOAT(M,D) columns,
	// whose (M,D) TABLE_MAP does not carry; a DDL statement clears it.
	floats map[string]map[string]bool
	// keys holds, per table without a primary key in its TABLE_MAP, the
	// unique index Debezium keys it by (see KeyColumns), none if it has
	// none; read again after a DDL statement, as floats.
	keys map[string][]string
	// unreadable holds why a table's TABLE_MAP cannot be read, by table
	// id; decodeErr why go-mysql could not decode the rows event about to
	// be handled (see decodeRows).
	unreadable map[uint64]error
	decodeErr  error
	want       func(db, table string) bool
	cur        *Txn
	out        chan *Txn
	errc       chan error
	done       chan struct{}
	stop       context.CancelFunc
}

// HandleEvent takes each event in go-mysql's reading goroutine (no extra
// queue of raw events); rows are copied out of the packet data (see own).
func (r *Reader) HandleEvent(ev *replication.BinlogEvent) error {
	txn, err := r.handle(ev)
	if err != nil {
		return err
	}
	if txn == nil {
		if _, ok := ev.Event.(*replication.HeartbeatEvent); !ok {
			return nil
		}
		txn = &Txn{Next: r.pos, Received: time.Now()}
	}
	select {
	case r.out <- txn:
		return nil
	case <-r.done:
		return context.Canceled
	}
}

// Open starts reading at pos; want, when not nil, says which tables' rows
// to hand out (the others' rows are skipped). On a server other than pos's
// (a failover) it starts from pos's GTID set, if that server can go on
// from it (see Resume; a *Refusal says why not).
func Open(ctx context.Context, cfg Config, flavor string, pos Position, want func(db, table string) bool) (*Reader, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %v", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("address %q: bad port", cfg.Addr)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	scfg := replication.BinlogSyncerConfig{
		ServerID:                cfg.ServerID,
		Flavor:                  flavor,
		Host:                    host,
		Port:                    uint16(port),
		User:                    cfg.User,
		Password:                cfg.Password,
		TLSConfig:               cfg.TLS,
		Charset:                 "utf8mb4",
		TimestampStringLocation: time.UTC,
		HeartbeatPeriod:         time.Second,
		ReadTimeout:             5 * time.Second,
		DisableRetrySync:        true, // the job reconnects from its own committed position
		Logger:                  logger,
		Dialer:                  (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		EventCacheCount:         10240,
	}
	c, err := Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	origin, byGTID, err := resumeOn(c, cfg.Addr, flavor, pos)
	var charsets event.Charsets
	if err == nil {
		charsets, err = ReadCharsets(c)
	}
	c.Close()
	if err != nil {
		return nil, err
	}
	if !byGTID {
		pos.Origin = origin // a checkpoint written before ferry recorded it
	}
	r := &Reader{cfg: cfg, flavor: flavor, pos: pos, origin: origin, file: pos.File, tables: map[uint64]*event.Table{}, charsets: charsets, floats: map[string]map[string]bool{}, keys: map[string][]string{}, unreadable: map[uint64]error{}, want: want,
		out: make(chan *Txn, 1024), errc: make(chan error, 1), done: make(chan struct{})}
	scfg.SynchronousEventHandler = r
	scfg.RowsEventDecodeFunc = r.decodeRows
	if pos.GTID != "" {
		if r.gtids, err = mysql.ParseGTIDSet(flavor, pos.GTID); err != nil {
			return nil, fmt.Errorf("GTID set %q: %v", pos.GTID, err)
		}
	}
	r.syncer = replication.NewBinlogSyncer(scfg)
	if byGTID {
		// go-mysql keeps and updates the set it is given.
		r.stream, err = r.syncer.StartSyncGTID(r.gtids.Clone())
	} else {
		r.stream, err = r.syncer.StartSync(mysql.Position{Name: pos.File, Pos: uint32(pos.Pos)})
	}
	if err != nil {
		r.syncer.Close()
		return nil, err
	}
	// With a synchronous handler the streamer only carries the error that
	// ends the stream.
	ectx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go func() {
		_, err := r.stream.GetEvent(ectx)
		r.errc <- err
	}()
	return r, nil
}

// Close ends the replication connection.
func (r *Reader) Close() {
	close(r.done)
	r.stop()
	r.syncer.Close()
}

// Position is where the next transaction starts.
func (r *Reader) Position() Position { return r.pos }

// Next returns the next committed transaction, or, when the stream is idle
// (a server heartbeat), a Txn without rows carrying the position; an error
// means the connection is gone.
func (r *Reader) Next(ctx context.Context) (*Txn, error) {
	// Transactions already read come before the error that ended the stream.
	select {
	case txn := <-r.out:
		return txn, nil
	default:
	}
	select {
	case txn := <-r.out:
		return txn, nil
	case err := <-r.errc:
		select {
		case txn := <-r.out:
			r.errc <- err
			return txn, nil
		default:
		}
		if err == nil {
			err = fmt.Errorf("binlog stream closed")
		}
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Reader) begin(h *replication.EventHeader) {
	r.cur = &Txn{File: r.file, ServerID: h.ServerID, Time: time.Unix(int64(h.Timestamp), 0).UTC()}
}

func (r *Reader) handle(ev *replication.BinlogEvent) (*Txn, error) {
	h := ev.Header
	if r.cur != nil {
		r.cur.Bytes += int(h.EventSize)
	}
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		r.file = string(e.NextLogName) // a copy of the packet's bytes
		// Started from a GTID set, the server reads from the start of a
		// file and skips the transactions in the set: its first rotate is
		// no place to resume at. Until the first commit gives one, the
		// position stays the other server's, and resuming there starts
		// from the GTID set again.
		if r.pos.Origin == r.origin {
			r.pos.File, r.pos.Pos = r.file, e.Position
		}
		return nil, nil
	case *replication.FormatDescriptionEvent:
		return nil, nil
	case *replication.MariadbGTIDEvent:
		r.begin(h)
		r.cur.GTID = e.GTID.String()
		return nil, nil
	case *replication.GTIDEvent:
		r.begin(h)
		if e.OriginalCommitTimestamp > 0 {
			r.cur.Time = e.OriginalCommitTime().UTC()
			r.cur.Micro = true
		}
		// gtid_mode=OFF writes anonymous ones: no GTID.
		if next, err := e.GTIDNext(); err == nil && h.EventType != replication.ANONYMOUS_GTID_EVENT {
			r.cur.GTID = next.String()
		}
		return nil, nil
	case *replication.QueryEvent:
		q := strings.TrimSpace(string(e.Query))
		if strings.EqualFold(q, "BEGIN") {
			if r.cur == nil {
				r.begin(h)
			}
			r.cur.Thread = int64(e.SlaveProxyID)
			return nil, nil
		}
		if strings.EqualFold(q, "COMMIT") {
			return r.commit(h), nil
		}
		// DDL and other statements commit on their own. A table's shape
		// may have changed: its TABLE_MAP and FLOAT(M,D)s are read again.
		clear(r.tables)
		clear(r.floats)
		clear(r.keys)
		clear(r.unreadable)
		if r.cur == nil {
			r.begin(h)
		}
		r.cur.Thread = int64(e.SlaveProxyID)
		return r.commit(h), nil
	case *replication.XIDEvent:
		return r.commit(h), nil
	case *replication.TableMapEvent:
		if _, ok := r.tables[e.TableID]; ok && r.tables[e.TableID].Name == string(e.Table) && r.tables[e.TableID].DB == string(e.Schema) && len(r.tables[e.TableID].Columns) == int(e.ColumnCount) {
			// go-mysql re-decodes TABLE_MAP each time; keep ours unless the
			// shape changed.
			if !shapeChanged(r.tables[e.TableID], e) {
				return nil, nil
			}
		}
		if r.want != nil && !r.want(string(e.Schema), string(e.Table)) {
			r.tables[e.TableID] = &event.Table{DB: string(e.Schema), Name: string(e.Table)}
			return nil, nil
		}
		delete(r.unreadable, e.TableID)
		t, err := TableFromMap(e, r.charsets)
		if err == nil {
			err = r.annotate(t)
		}
		var te tableError
		if errors.As(err, &te) {
			r.tables[e.TableID] = &event.Table{DB: string(e.Schema), Name: string(e.Table)}
			r.unreadable[e.TableID] = te.error
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		r.tables[e.TableID] = t
		return nil, nil
	case *replication.RowsEvent:
		decodeErr := r.decodeErr
		r.decodeErr = nil
		t := r.tables[e.TableID]
		if t == nil || t.Columns == nil && r.unreadable[e.TableID] == nil {
			return nil, nil
		}
		if r.cur == nil {
			r.begin(h)
		}
		pos := uint64(h.LogPos - h.EventSize)
		if err := cmp.Or(r.unreadable[e.TableID], decodeErr); err != nil {
			r.cur.Rows = append(r.cur.Rows, Rows{Table: t, Op: opOf(h.EventType), Pos: pos, Err: err, Event: bytes.Clone(ev.RawData)})
			return nil, nil
		}
		r.addRows(t, h.EventType, e, pos)
		return nil, nil
	}
	return nil, nil
}

func shapeChanged(t *event.Table, e *replication.TableMapEvent) bool {
	names := e.ColumnName
	for i := range t.Columns {
		if i >= len(names) || t.Columns[i].Name != string(names[i]) || t.Columns[i].Type != e.ColumnType[i] {
			return true
		}
	}
	return false
}

// own copies a row's strings and byte slices: go-mysql's decoded values
// point into the event's packet data, which a transaction's rows must not
// keep alive (or share) while they wait to be committed.
func own(row []any) []any {
	for i, v := range row {
		switch x := v.(type) {
		case string:
			row[i] = strings.Clone(x)
		case []byte:
			row[i] = bytes.Clone(x)
		}
	}
	return row
}

// opOf is the change a rows event type makes, 0 for none.
func opOf(et replication.EventType) byte {
	switch et {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2, replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		return event.OpCreate
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2, replication.PARTIAL_UPDATE_ROWS_EVENT, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		return event.OpUpdate
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2, replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		return event.OpDelete
	}
	return 0
}

// decodeRows decodes a rows event for go-mysql. Values it cannot decode
// would end the stream, and with it every table's capture: they are kept
// for handle instead, which makes the event that table's failure.
func (r *Reader) decodeRows(e *replication.RowsEvent, data []byte) error {
	pos, err := e.DecodeHeader(data)
	if err != nil {
		return err // no TABLE_MAP: which table it is cannot be told
	}
	if err := e.DecodeData(pos, data); err != nil {
		r.decodeErr = fmt.Errorf("rows event: %w", err)
	}
	return nil
}

// tableError is a table's TABLE_MAP that ferry cannot turn into events:
// its rows fail, the other tables' go on.
type tableError struct{ error }

func (r *Reader) addRows(t *event.Table, et replication.EventType, e *replication.RowsEvent, pos uint64) {
	for _, row := range e.Rows {
		own(row)
	}
	op := opOf(et)
	if op == 0 {
		return
	}
	if op == event.OpUpdate {
		for i := 0; i+1 < len(e.Rows); i += 2 {
			r.cur.Rows = append(r.cur.Rows, Rows{Table: t, Op: op, Before: e.Rows[i], After: e.Rows[i+1], Pos: pos, Row: i / 2})
		}
		return
	}
	for i, row := range e.Rows {
		rc := Rows{Table: t, Op: op, Pos: pos, Row: i}
		if op == event.OpCreate {
			rc.After = row
		} else {
			rc.Before = row
		}
		r.cur.Rows = append(r.cur.Rows, rc)
	}
}

func (r *Reader) commit(h *replication.EventHeader) *Txn {
	txn := r.cur
	r.cur = nil
	if h.LogPos > 0 {
		r.pos.File, r.pos.Pos, r.pos.Origin = r.file, uint64(h.LogPos), r.origin
	}
	if txn == nil {
		txn = &Txn{File: r.file, ServerID: h.ServerID, Time: time.Unix(int64(h.Timestamp), 0).UTC()}
	}
	if txn.GTID != "" {
		if r.gtids == nil {
			r.gtids, _ = mysql.ParseGTIDSet(r.flavor, "")
		}
		if r.gtids != nil {
			_ = r.gtids.Update(txn.GTID)
			r.pos.GTID = r.gtids.String()
		}
	}
	txn.Next = r.pos
	txn.Received = time.Now()
	return txn
}

// TableFromMap describes a table from its TABLE_MAP event. It needs the
// optional metadata of binlog_row_metadata=FULL (column names, signedness,
// collations, ENUM/SET members) and refuses a map without it. cs names
// the character sets of the server's collations.
func TableFromMap(e *replication.TableMapEvent, cs event.Charsets) (*event.Table, error) {
	t := &event.Table{DB: string(e.Schema), Name: string(e.Table)}
	n := int(e.ColumnCount)
	if len(e.ColumnName) != n {
		return nil, fmt.Errorf("%s: the binlog's TABLE_MAP has no column names; set binlog_row_metadata=FULL (SET GLOBAL binlog_row_metadata=FULL and in my.cnf)", t.FullName())
	}
	unsigned := e.UnsignedMap()
	collations := map[int]uint64{}
	maps.Copy(collations, e.CollationMap())
	maps.Copy(collations, e.EnumSetCollationMap())
	enums := e.EnumStrValueMap()
	sets := e.SetStrValueMap()
	for i := 0; i < n; i++ {
		var members []string
		if m, ok := enums[i]; ok {
			members = m
		} else if m, ok := sets[i]; ok {
			members = m
		}
		for k := range members {
			members[k] = strings.Clone(members[k])
		}
		_, nullable := e.Nullable(i)
		col, err := event.ColumnFromBinlog(string(e.ColumnName[i]), e.ColumnType[i], e.ColumnMeta[i], unsigned[i], collations[i], cs, members, nullable)
		if err != nil {
			return nil, tableError{fmt.Errorf("%s: %w", t.FullName(), err)}
		}
		t.Columns = append(t.Columns, col)
	}
	for _, k := range e.PrimaryKey {
		t.Key = append(t.Key, int(k))
	}
	return t, nil
}

// annotate adds to a table what its TABLE_MAP does not say: its FLOAT(M,D)
// columns, read from the server once per table and again after a DDL
// statement (the server's current schema, which is the binlog's unless the
// reader is behind a later DDL statement), the years setting and a
// declared key.
func (r *Reader) annotate(t *event.Table) error {
	names, declared := r.cfg.Keys[t.FullName()]
	if !declared && len(t.Key) == 0 {
		var ok bool
		if names, ok = r.keys[t.FullName()]; !ok {
			err := r.query(func(c *client.Conn) (err error) {
				names, err = KeyColumns(c, t.DB, t.Name)
				return err
			})
			if err != nil {
				return err
			}
			r.keys[t.FullName()] = names
		}
	}
	if len(names) > 0 {
		key, err := t.ColumnIndexes(names)
		if err != nil {
			return tableError{fmt.Errorf("%s: key: %w", t.FullName(), err)}
		}
		t.Key = key
	}
	floats := r.floats[t.FullName()]
	if floats == nil && slices.ContainsFunc(t.Columns, func(c event.Column) bool { return c.Kind == event.KindFloat }) {
		err := r.query(func(c *client.Conn) (err error) {
			floats, err = ReadFloats(c, t.DB, t.Name)
			return err
		})
		if err != nil {
			return err
		}
		r.floats[t.FullName()] = floats
	}
	for i := range t.Columns {
		c := &t.Columns[i]
		c.Widen = c.Kind == event.KindFloat && floats[strings.ToLower(c.Name)]
		c.RawYears = r.cfg.RawYears
	}
	return nil
}

// query runs fn on a connection of its own to the source: what the
// binlog does not say of a table is read from the server.
func (r *Reader) query(fn func(*client.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Connect(ctx, r.cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// ReadFloats lists a table's FLOAT(M,D) columns, by lower-case name.
func ReadFloats(c *client.Conn, db, table string) (map[string]bool, error) {
	r, err := c.Execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND DATA_TYPE = 'float' AND COLUMN_TYPE LIKE 'float(%,%)'", db, table)
	if err != nil {
		return nil, fmt.Errorf("reading the FLOAT(M,D) columns of %s.%s: %w", db, table, err)
	}
	defer r.Close()
	out := map[string]bool{}
	for i := range r.Values {
		col, _ := r.GetString(i, 0)
		out[strings.ToLower(col)] = true
	}
	return out, nil
}

// ReadCharsets reads the character set of each of the server's collations.
func ReadCharsets(c *client.Conn) (event.Charsets, error) {
	r, err := c.Execute("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("reading the server's collations: %w", err)
	}
	defer r.Close()
	cs := make(event.Charsets, r.RowNumber())
	for i := range r.Values {
		id, _ := r.GetUint(i, 0)
		name, _ := r.GetString(i, 1)
		cs[id] = name
	}
	return cs, nil
}
