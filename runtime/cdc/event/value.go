package event

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// AppendValue appends v, a value of column c, as Debezium's JsonConverter
// writes it. v is what go-mysql decodes from a binlog row (intN/uintN,
// float32/64, string, []byte, nil), the text protocol's bytes of the
// initial load ([]byte or string), or a *mysql.FieldValue of the load's
// rows, which is taken as it is rather than boxed value by value.
func AppendValue(buf []byte, c *Column, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case string:
		return appendFromText(buf, c, x)
	case []byte:
		return appendFromText(buf, c, unsafe.String(unsafe.SliceData(x), len(x)))
	case *mysql.FieldValue:
		return appendField(buf, c, x)
	}
	switch c.Kind {
	case KindInt:
		if out, ok := appendInt(buf, v); ok {
			return out, nil
		}
	case KindFloat, KindDouble:
		switch x := v.(type) {
		case float32:
			return appendFloat(buf, c, float64(x)), nil
		case float64:
			return appendFloat(buf, c, x), nil
		}
	case KindBool, KindBits:
		// The binlog gives the bits as an integer.
		switch x := v.(type) {
		case int64:
			return appendBits(buf, c, uint64(x)), nil
		case uint64:
			return appendBits(buf, c, x), nil
		case int:
			return appendBits(buf, c, uint64(x)), nil
		}
	case KindYear:
		switch x := v.(type) {
		case int:
			return strconv.AppendInt(buf, int64(x), 10), nil
		case int64:
			return strconv.AppendInt(buf, x, 10), nil
		case uint64:
			return appendUnsigned(buf, x), nil
		}
	case KindEnum:
		if x, ok := v.(int64); ok {
			if x == 0 {
				return appendString(buf, ""), nil
			}
			if x < 0 || int(x) > len(c.Members) {
				return buf, fmt.Errorf("ENUM index %d out of range (%d members)", x, len(c.Members))
			}
			return appendString(buf, c.Members[x-1]), nil
		}
	case KindSet:
		if x, ok := v.(int64); ok {
			var parts []string
			for i := 0; i < len(c.Members) && i < 64; i++ {
				if x&(1<<uint(i)) != 0 {
					parts = append(parts, c.Members[i])
				}
			}
			return appendString(buf, strings.Join(parts, ",")), nil
		}
	}
	s, err := text(v)
	if err != nil {
		return buf, err
	}
	return appendFromText(buf, c, s)
}

// appendField writes a value of the text protocol as go-mysql parsed it:
// integers as numbers, floats as float64, all else as the server's text.
func appendField(buf []byte, c *Column, fv *mysql.FieldValue) ([]byte, error) {
	switch fv.Type {
	case mysql.FieldValueTypeNull:
		return append(buf, "null"...), nil
	case mysql.FieldValueTypeSigned:
		if c.Kind == KindInt || c.Kind == KindYear {
			return strconv.AppendInt(buf, fv.AsInt64(), 10), nil
		}
	case mysql.FieldValueTypeUnsigned:
		if c.Kind == KindInt || c.Kind == KindYear {
			return appendUnsigned(buf, fv.AsUint64()), nil
		}
	case mysql.FieldValueTypeFloat:
		if c.Kind == KindFloat || c.Kind == KindDouble {
			return appendFloat(buf, c, fv.AsFloat64()), nil
		}
	case mysql.FieldValueTypeString:
		b := fv.AsString()
		return appendFromText(buf, c, unsafe.String(unsafe.SliceData(b), len(b)))
	}
	return AppendValue(buf, c, fv.Value())
}

// appendFromText writes a value given as text: the text protocol's, or a
// string or bytes that go-mysql decoded from the binlog. s may be a view of
// memory the caller reuses: nothing here keeps it.
func appendFromText(buf []byte, c *Column, s string) ([]byte, error) {
	switch c.Kind {
	case KindInt:
		if c.Unsigned {
			u, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return buf, fmt.Errorf("integer value %q: %v", s, err)
			}
			return appendUnsigned(buf, u), nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return buf, fmt.Errorf("integer value %q: %v", s, err)
		}
		return strconv.AppendInt(buf, n, 10), nil
	case KindDecimal:
		if !isDecimal(s) {
			return buf, fmt.Errorf("column %s: DECIMAL value %q is not a decimal number", c.Name, s)
		}
		return appendString(buf, s), nil
	case KindFloat, KindDouble:
		f, err := strconv.ParseFloat(s, floatBits(c))
		if err != nil {
			return buf, fmt.Errorf("float value %q: %v", s, err)
		}
		return appendFloat(buf, c, f), nil
	case KindBool, KindBits:
		// The text protocol gives the bits as big-endian bytes.
		var u uint64
		for i := 0; i < len(s); i++ {
			u = u<<8 | uint64(s[i])
		}
		return appendBits(buf, c, u), nil
	case KindDate:
		days, zero, err := parseDate(s, !c.RawYears)
		if err != nil {
			return buf, err
		}
		if zero {
			return appendZero(buf, c), nil
		}
		return strconv.AppendInt(buf, days, 10), nil
	case KindTime:
		us, err := parseTime(s)
		if err != nil {
			return buf, err
		}
		return strconv.AppendInt(buf, us, 10), nil
	case KindDatetime:
		us, zero, err := parseDatetime(s, !c.RawYears)
		if err != nil {
			return buf, err
		}
		if zero {
			return appendZero(buf, c), nil
		}
		if c.Size <= 3 {
			return strconv.AppendInt(buf, floorDiv(us, 1000), 10), nil
		}
		return strconv.AppendInt(buf, us, 10), nil
	case KindTimestamp:
		us, zero, err := parseDatetime(s, false) // from 1970: nothing to adjust
		if err != nil {
			return buf, err
		}
		if zero && c.Nullable {
			return append(buf, "null"...), nil
		}
		return appendString(buf, zonedTimestamp(time.UnixMicro(us), c.Size)), nil
	case KindYear:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return buf, fmt.Errorf("YEAR value %q: %v", s, err)
		}
		return strconv.AppendInt(buf, n, 10), nil
	case KindString, KindJSON, KindEnum, KindSet:
		return appendText(buf, c, s)
	case KindBytes:
		b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
		if c.Pad && len(b) < c.Size {
			p := make([]byte, c.Size)
			copy(p, b)
			b = p
		}
		buf = append(buf, '"')
		buf = base64.StdEncoding.AppendEncode(buf, b)
		return append(buf, '"'), nil
	}
	return buf, fmt.Errorf("column %s: MySQL type %d is not supported", c.Name, c.Type)
}

// appendText writes a character value (CHAR, TEXT, JSON, an ENUM or SET
// read as text) as a JSON string, decoded from the column's character set.
func appendText(buf []byte, c *Column, s string) ([]byte, error) {
	s, err := decodeText(c, s)
	if err != nil {
		return buf, err
	}
	return appendString(buf, s), nil
}

// isDecimal reports whether s is a DECIMAL as MySQL writes it:
// [-]digits[.digits].
func isDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(d string) bool {
		for i := 0; i < len(d); i++ {
			if d[i] < '0' || d[i] > '9' {
				return false
			}
		}
		return d != ""
	}
	return digits(whole) && (!dot || digits(frac))
}

// appendZero writes a zero date: null where the column allows it, else
// the epoch, as Debezium does.
func appendZero(buf []byte, c *Column) []byte {
	if c.Nullable {
		return append(buf, "null"...)
	}
	return append(buf, '0')
}

// text renders a decoded value that is neither a number AppendValue
// writes as it is nor a string or bytes (which it takes directly) as the
// text the server would send.
func text(v any) (string, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999"), nil
	case fmt.Stringer:
		return x.String(), nil
	}
	return "", fmt.Errorf("unexpected %T value %v", v, v)
}

// appendInt writes an integer as go-mysql decodes it from the binlog; ok
// is false for a value of another type.
func appendInt(buf []byte, v any) (out []byte, ok bool) {
	switch x := v.(type) {
	case int8:
		return strconv.AppendInt(buf, int64(x), 10), true
	case int16:
		return strconv.AppendInt(buf, int64(x), 10), true
	case int32:
		return strconv.AppendInt(buf, int64(x), 10), true
	case int64:
		return strconv.AppendInt(buf, x, 10), true
	case int:
		return strconv.AppendInt(buf, int64(x), 10), true
	case uint8:
		return appendUnsigned(buf, uint64(x)), true
	case uint16:
		return appendUnsigned(buf, uint64(x)), true
	case uint32:
		return appendUnsigned(buf, uint64(x)), true
	case uint64:
		return appendUnsigned(buf, x), true
	}
	return buf, false
}

// appendUnsigned writes an unsigned integer. BIGINT UNSIGNED: Debezium's
// default bigint.unsigned.handling.mode (long) writes the value as a Java
// long, so values above 2^63-1 wrap to negative numbers.
func appendUnsigned(buf []byte, u uint64) []byte {
	return strconv.AppendInt(buf, int64(u), 10)
}

func floatBits(c *Column) int {
	if c.Kind == KindFloat {
		return 32
	}
	return 64
}

// appendFloat writes a FLOAT or DOUBLE value; a FLOAT(M,D)'s float value
// as a double, as Debezium widens it.
func appendFloat(buf []byte, c *Column, f float64) []byte {
	if c.Widen {
		return AppendJavaFloat(buf, float64(float32(f)), 64)
	}
	return AppendJavaFloat(buf, f, floatBits(c))
}

// AppendJavaFloat writes f as Java's Float.toString (bits 32) or
// Double.toString (bits 64) does, which is what Jackson, and so
// JsonConverter, writes: the shortest digits that read back to the same
// value, with at least one digit after the point ("1.0"), and computerized
// scientific notation ("1.0E10", "1.0E-5") outside [10^-3, 10^7).
func AppendJavaFloat(buf []byte, f float64, bits int) []byte {
	if bits == 32 {
		f = float64(float32(f)) // a double out of a float's range is its infinity
	}
	switch {
	case math.IsNaN(f):
		return append(buf, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(buf, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(buf, `"-Infinity"`...)
	case f == 0:
		if math.Signbit(f) {
			return append(buf, "-0.0"...)
		}
		return append(buf, "0.0"...)
	}
	// Shortest digits and exponent: d.ddddde±x.
	s := strconv.FormatFloat(f, 'e', -1, bits)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
		buf = append(buf, '-')
	}
	ePos := strings.IndexByte(s, 'e')
	mant, exp := s[:ePos], s[ePos+1:]
	e, _ := strconv.Atoi(exp)
	digits := strings.Replace(mant, ".", "", 1)
	abs := math.Abs(f)
	if abs >= 1e-3 && abs < 1e7 {
		// Plain notation.
		if e >= 0 {
			intPart := digits
			frac := ""
			if len(digits) > e+1 {
				intPart, frac = digits[:e+1], digits[e+1:]
			} else {
				intPart = digits + strings.Repeat("0", e+1-len(digits))
			}
			if frac == "" {
				frac = "0"
			}
			buf = append(buf, intPart...)
			buf = append(buf, '.')
			return append(buf, frac...)
		}
		buf = append(buf, "0."...)
		buf = append(buf, strings.Repeat("0", -e-1)...)
		return append(buf, digits...)
	}
	buf = append(buf, digits[0], '.')
	if len(digits) > 1 {
		buf = append(buf, digits[1:]...)
	} else {
		buf = append(buf, '0')
	}
	buf = append(buf, 'E')
	return strconv.AppendInt(buf, int64(e), 10)
}

// appendBits writes BIT(1) as a boolean and BIT(n) as its bits in
// little-endian order, (n+7)/8 bytes, base64.
func appendBits(buf []byte, c *Column, u uint64) []byte {
	if c.Kind == KindBool {
		if u != 0 {
			return append(buf, "true"...)
		}
		return append(buf, "false"...)
	}
	n := (c.Size + 7) / 8
	var b [8]byte
	for i := 0; i < n && i < len(b); i++ {
		b[i] = byte(u >> (8 * uint(i)))
	}
	buf = append(buf, '"')
	buf = base64.StdEncoding.AppendEncode(buf, b[:n])
	return append(buf, '"')
}

// parseDate reads "YYYY-MM-DD" into days since the epoch, years 0-99
// adjusted if asked (see Column.RawYears). The arithmetic
// is done here, not by time.Date: every DATE and DATETIME of a load or a
// binlog row passes through it.
func parseDate(s string, adjust bool) (days int64, zero bool, err error) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false, fmt.Errorf("DATE value %q", s)
	}
	y, ok1 := digits(s[:4])
	m, ok2 := digits(s[5:7])
	d, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || m > 12 {
		return 0, false, fmt.Errorf("DATE value %q", s)
	}
	if m == 0 || d == 0 {
		return 0, true, nil
	}
	if adjust && y < 70 {
		y += 2000
	} else if adjust && y < 100 {
		y += 1900
	}
	return civilDays(y, m, d), false, nil
}

// civilDays counts the days from 1970-01-01 to y-m-d in the proleptic
// Gregorian calendar (H. Hinnant's days_from_civil). A day past the end of
// its month, which MySQL keeps under ALLOW_INVALID_DATES, runs on into the
// next, as time.Date would normalize it.
func civilDays(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// digits reads a field of decimal digits, as the date and time fields
// MySQL writes are.
func digits(s string) (int64, bool) {
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, s != ""
}

// parseDatetime reads "YYYY-MM-DD HH:MM:SS[.ffffff]", as UTC, into
// microseconds since the epoch.
func parseDatetime(s string, adjust bool) (us int64, zero bool, err error) {
	if len(s) < 19 || s[10] != ' ' && s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false, fmt.Errorf("DATETIME value %q", s)
	}
	days, zero, err := parseDate(s[:10], adjust)
	if err != nil {
		return 0, false, fmt.Errorf("DATETIME value %q", s)
	}
	if zero {
		return 0, true, nil
	}
	h, ok1 := digits(s[11:13])
	mi, ok2 := digits(s[14:16])
	sec, ok3 := digits(s[17:19])
	frac, err := fraction(s[19:])
	if !ok1 || !ok2 || !ok3 || err != nil {
		return 0, false, fmt.Errorf("DATETIME value %q", s)
	}
	return ((days*24+h)*60+mi)*60_000_000 + sec*1_000_000 + frac, false, nil
}

// fraction reads "", ".1" .. ".123456" into microseconds.
func fraction(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if s[0] != '.' || len(s) > 7 {
		return 0, fmt.Errorf("fraction %q", s)
	}
	var n int64
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("fraction %q", s)
		}
		n = n*10 + int64(c-'0')
	}
	for i := len(s); i < 7; i++ {
		n *= 10
	}
	return n, nil
}

// parseTime reads "[-]HHH:MM:SS[.ffffff]" into microseconds.
func parseTime(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	frac := ""
	if i := strings.IndexByte(body, '.'); i >= 0 {
		body, frac = body[:i], body[i:]
	}
	parts := strings.Split(body, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("TIME value %q", s)
	}
	h, e1 := strconv.ParseInt(parts[0], 10, 64)
	m, e2 := strconv.ParseInt(parts[1], 10, 64)
	sec, e3 := strconv.ParseInt(parts[2], 10, 64)
	us, e4 := fraction(frac)
	if e1 != nil || e2 != nil || e3 != nil || e4 != nil {
		return 0, fmt.Errorf("TIME value %q", s)
	}
	total := ((h*60+m)*60+sec)*1_000_000 + us
	if neg {
		total = -total
	}
	return total, nil
}

// zonedTimestamp formats a UTC instant as io.debezium.time.ZonedTimestamp:
// ISO-8601 with "Z" and as many fraction digits as the column's precision.
func zonedTimestamp(t time.Time, fsp int) string {
	layout := "2006-01-02T15:04:05"
	if fsp > 0 {
		layout += "." + strings.Repeat("0", fsp)
	}
	return t.UTC().Format(layout) + "Z"
}

// appendString writes s as a JSON string the way Jackson escapes it:
// quotes, backslashes and control characters; other characters, emoji
// included, as they are (UTF-8).
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			// Names and positions from the server are written as they
			// are; bytes that are not UTF-8 become U+FFFD, as a Java
			// string decoded from them holds, so the JSON stays valid.
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, s[start:i]...)
				buf = append(buf, "\ufffd"...)
				start = i + 1
			}
			i += size - 1
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"':
			buf = append(buf, '\\', '"')
		case '\\':
			buf = append(buf, '\\', '\\')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\f':
			buf = append(buf, '\\', 'f')
		default:
			const hex = "0123456789ABCDEF"
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
