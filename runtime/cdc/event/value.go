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

	"golang.org/x/text/encoding/charmap"
)

// AppendValue appends v, a value of column c, as Debezium's JsonConverter
// writes it. v is what go-mysql decodes from a binlog row (intN/uintN,
// float32/64, string, []byte, nil) or the text protocol's bytes of the
// initial load ([]byte or string).
func AppendValue(buf []byte, c *Column, v any) ([]byte, error) {
	if v == nil {
		return append(buf, "null"...), nil
	}
	switch c.Kind {
	case KindInt:
		return appendInt(buf, c, v)
	case KindDecimal:
		s, err := text(v)
		if err != nil {
			return buf, err
		}
		if !isDecimal(s) {
			return buf, fmt.Errorf("column %s: DECIMAL value %q is not a decimal number", c.Name, s)
		}
		return appendString(buf, s), nil
	case KindFloat, KindDouble:
		return appendFloat(buf, c, v)
	case KindBool, KindBits:
		return appendBits(buf, c, v)
	case KindDate:
		s, err := text(v)
		if err != nil {
			return buf, err
		}
		days, zero, err := parseDate(s)
		if err != nil {
			return buf, err
		}
		if zero {
			return appendZero(buf, c), nil
		}
		return strconv.AppendInt(buf, days, 10), nil
	case KindTime:
		s, err := text(v)
		if err != nil {
			return buf, err
		}
		us, err := parseTime(s)
		if err != nil {
			return buf, err
		}
		return strconv.AppendInt(buf, us, 10), nil
	case KindDatetime:
		s, err := text(v)
		if err != nil {
			return buf, err
		}
		t, zero, err := parseDatetime(s)
		if err != nil {
			return buf, err
		}
		if zero {
			return appendZero(buf, c), nil
		}
		if c.Size <= 3 {
			return strconv.AppendInt(buf, t.UnixMilli(), 10), nil
		}
		return strconv.AppendInt(buf, t.UnixMicro(), 10), nil
	case KindTimestamp:
		s, err := text(v)
		if err != nil {
			return buf, err
		}
		t, zero, err := parseDatetime(s)
		if err != nil {
			return buf, err
		}
		if zero {
			if c.Nullable {
				return append(buf, "null"...), nil
			}
			t = time.Unix(0, 0).UTC()
		}
		return appendString(buf, zonedTimestamp(t, c.Size)), nil
	case KindYear:
		switch x := v.(type) {
		case int:
			return strconv.AppendInt(buf, int64(x), 10), nil
		case int64:
			return strconv.AppendInt(buf, x, 10), nil
		case uint64:
			return strconv.AppendUint(buf, x, 10), nil
		}
		s, err := text(v)
		if err != nil {
			return buf, err
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return buf, fmt.Errorf("YEAR value %q: %v", s, err)
		}
		return strconv.AppendInt(buf, n, 10), nil
	case KindString, KindJSON:
		return appendText(buf, c, v)
	case KindBytes:
		b, err := bytesOf(v)
		if err != nil {
			return buf, err
		}
		if c.Pad && len(b) < c.Size {
			p := make([]byte, c.Size)
			copy(p, b)
			b = p
		}
		buf = append(buf, '"')
		buf = base64.StdEncoding.AppendEncode(buf, b)
		return append(buf, '"'), nil
	case KindEnum:
		switch x := v.(type) {
		case int64:
			if x == 0 {
				return appendString(buf, ""), nil
			}
			if x < 0 || int(x) > len(c.Members) {
				return buf, fmt.Errorf("ENUM index %d out of range (%d members)", x, len(c.Members))
			}
			return appendString(buf, c.Members[x-1]), nil
		}
		return appendText(buf, c, v)
	case KindSet:
		switch x := v.(type) {
		case int64:
			var parts []string
			for i := 0; i < len(c.Members) && i < 64; i++ {
				if x&(1<<uint(i)) != 0 {
					parts = append(parts, c.Members[i])
				}
			}
			return appendString(buf, strings.Join(parts, ",")), nil
		}
		return appendText(buf, c, v)
	}
	return buf, fmt.Errorf("column %s: MySQL type %d is not supported", c.Name, c.Type)
}

// appendText writes a character value (CHAR, TEXT, JSON, an ENUM or SET
// read as text) as a JSON string: UTF-8 as it is, latin1 decoded, anything
// else an error.
func appendText(buf []byte, c *Column, v any) ([]byte, error) {
	s, err := text(v)
	if err != nil {
		return buf, err
	}
	if !utf8.ValidString(s) {
		if !c.Latin1 {
			return buf, fmt.Errorf("column %s: value is not valid UTF-8 (only utf8, utf8mb4, ascii and latin1 columns are decoded)", c.Name)
		}
		if s, err = charmap.Windows1252.NewDecoder().String(s); err != nil {
			return buf, fmt.Errorf("column %s: latin1 value: %v", c.Name, err)
		}
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

// text returns a value as a string. A []byte becomes a view of the same
// memory, not a copy: every caller parses the string or appends it to the
// output, and none keeps it.
func text(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return unsafe.String(unsafe.SliceData(x), len(x)), nil
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999"), nil
	case fmt.Stringer:
		return x.String(), nil
	}
	return "", fmt.Errorf("unexpected %T value %v", v, v)
}

func bytesOf(v any) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case string:
		return []byte(x), nil
	}
	return nil, fmt.Errorf("unexpected %T value for a binary column", v)
}

func appendInt(buf []byte, c *Column, v any) ([]byte, error) {
	switch x := v.(type) {
	case int8:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(buf, x, 10), nil
	case int:
		return strconv.AppendInt(buf, int64(x), 10), nil
	case uint8:
		return strconv.AppendUint(buf, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(buf, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(buf, uint64(x), 10), nil
	case uint64:
		// BIGINT UNSIGNED: Debezium's default bigint.unsigned.handling.mode
		// (long) writes the value as a Java long, so values above 2^63-1
		// wrap to negative numbers.
		return strconv.AppendInt(buf, int64(x), 10), nil
	}
	s, err := text(v)
	if err != nil {
		return buf, err
	}
	if c.Unsigned {
		u, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return buf, fmt.Errorf("integer value %q: %v", s, err)
		}
		return strconv.AppendInt(buf, int64(u), 10), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return buf, fmt.Errorf("integer value %q: %v", s, err)
	}
	return strconv.AppendInt(buf, n, 10), nil
}

func appendFloat(buf []byte, c *Column, v any) ([]byte, error) {
	var f float64
	bits := 64
	if c.Kind == KindFloat {
		bits = 32
	}
	switch x := v.(type) {
	case float32:
		f = float64(x)
	case float64:
		f = x
	default:
		s, err := text(v)
		if err != nil {
			return buf, err
		}
		f, err = strconv.ParseFloat(s, bits)
		if err != nil {
			return buf, fmt.Errorf("float value %q: %v", s, err)
		}
	}
	return AppendJavaFloat(buf, f, bits), nil
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
// little-endian order, (n+7)/8 bytes, base64. The binlog gives the value
// as an integer, the text protocol as big-endian bytes.
func appendBits(buf []byte, c *Column, v any) ([]byte, error) {
	var u uint64
	switch x := v.(type) {
	case int64:
		u = uint64(x)
	case uint64:
		u = x
	case int:
		u = uint64(x)
	case []byte:
		for _, b := range x {
			u = u<<8 | uint64(b)
		}
	case string:
		for i := 0; i < len(x); i++ {
			u = u<<8 | uint64(x[i])
		}
	default:
		return buf, fmt.Errorf("unexpected %T value for BIT", v)
	}
	if c.Kind == KindBool {
		if u != 0 {
			return append(buf, "true"...), nil
		}
		return append(buf, "false"...), nil
	}
	n := (c.Size + 7) / 8
	b := make([]byte, n)
	for i := 0; i < n; i++ {
		b[i] = byte(u >> (8 * uint(i)))
	}
	buf = append(buf, '"')
	buf = base64.StdEncoding.AppendEncode(buf, b)
	return append(buf, '"'), nil
}

// parseDate reads "YYYY-MM-DD" into days since the epoch.
func parseDate(s string) (days int64, zero bool, err error) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false, fmt.Errorf("DATE value %q", s)
	}
	y, e1 := strconv.Atoi(s[:4])
	m, e2 := strconv.Atoi(s[5:7])
	d, e3 := strconv.Atoi(s[8:10])
	if e1 != nil || e2 != nil || e3 != nil {
		return 0, false, fmt.Errorf("DATE value %q", s)
	}
	if m == 0 || d == 0 {
		return 0, true, nil
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	return floorDiv(t.Unix(), 86400), false, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// parseDatetime reads "YYYY-MM-DD HH:MM:SS[.ffffff]" as UTC.
func parseDatetime(s string) (t time.Time, zero bool, err error) {
	if len(s) < 19 || s[10] != ' ' && s[10] != 'T' {
		return t, false, fmt.Errorf("DATETIME value %q", s)
	}
	_, zero, err = parseDate(s[:10])
	if err != nil {
		return t, false, fmt.Errorf("DATETIME value %q", s)
	}
	if zero {
		return t, true, nil
	}
	y, _ := strconv.Atoi(s[:4])
	mo, _ := strconv.Atoi(s[5:7])
	d, _ := strconv.Atoi(s[8:10])
	h, e1 := strconv.Atoi(s[11:13])
	mi, e2 := strconv.Atoi(s[14:16])
	sec, e3 := strconv.Atoi(s[17:19])
	if e1 != nil || e2 != nil || e3 != nil {
		return t, false, fmt.Errorf("DATETIME value %q", s)
	}
	us, err := fraction(s[19:])
	if err != nil {
		return t, false, fmt.Errorf("DATETIME value %q", s)
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, int(us)*1000, time.UTC), false, nil
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
