package event

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

// Charsets maps a server's collation ids to their character set names
// ("latin1", "utf16", ...), as information_schema.COLLATIONS lists them.
// The binlog names a column's character set only by a collation id, and
// MySQL and MariaDB number some collations differently, so the map is
// read from the server the binlog comes from.
type Charsets map[uint64]string

// utf8Charsets are stored as UTF-8 (ascii is a subset): their bytes are
// written as they are.
var utf8Charsets = map[string]bool{"utf8mb4": true, "utf8mb3": true, "utf8": true, "ascii": true}

// decoders are the character sets whose bytes are decoded to UTF-8, by
// the mapping the server itself uses to convert them (MySQL's ucs2 is
// UTF-16 big-endian without surrogates; its latin1 is below).
var decoders = map[string]encoding.Encoding{
	"latin2":   charmap.ISO8859_2,
	"latin5":   charmap.ISO8859_9,
	"latin7":   charmap.ISO8859_13,
	"greek":    charmap.ISO8859_7,
	"hebrew":   charmap.ISO8859_8,
	"cp1250":   charmap.Windows1250,
	"cp1251":   charmap.Windows1251,
	"cp1256":   charmap.Windows1256,
	"cp1257":   charmap.Windows1257,
	"cp850":    charmap.CodePage850,
	"cp852":    charmap.CodePage852,
	"cp866":    charmap.CodePage866,
	"koi8r":    charmap.KOI8R,
	"koi8u":    charmap.KOI8U,
	"macroman": charmap.Macintosh,
	"ucs2":     unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM),
	"utf16":    unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM),
	"utf16le":  unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM),
	"utf32":    utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM),
	"sjis":     japanese.ShiftJIS,
	"cp932":    japanese.ShiftJIS,
	"ujis":     japanese.EUCJP,
	"eucjpms":  japanese.EUCJP,
	"euckr":    korean.EUCKR,
	"gb2312":   simplifiedchinese.GBK,
	"gbk":      simplifiedchinese.GBK,
	"gb18030":  simplifiedchinese.GB18030,
	"big5":     traditionalchinese.Big5,
}

// unicodeCharsets can store U+FFFD itself; in the others it can only
// stand for bytes the decoder could not read.
var unicodeCharsets = map[string]bool{"ucs2": true, "utf16": true, "utf16le": true, "utf32": true}

// latin1High is MySQL's latin1 (Windows-1252, whose five unassigned
// bytes MySQL maps to the C1 controls of the same number) for bytes
// 0x80-0x9F; the other bytes are their own code points.
var latin1High = [32]rune{
	'€', '', '‚', 'ƒ', '„', '…', '†', '‡',
	'ˆ', '‰', 'Š', '‹', 'Œ', '', 'Ž', '',
	'', '‘', '’', '“', '”', '•', '–', '—',
	'˜', '™', 'š', '›', 'œ', '', 'ž', 'Ÿ',
}

func decodeLatin1(s string) string {
	b := make([]byte, 0, len(s)+len(s)/2)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x80:
			b = append(b, c)
		case c < 0xA0:
			b = utf8.AppendRune(b, latin1High[c-0x80])
		default:
			b = utf8.AppendRune(b, rune(c))
		}
	}
	return string(b)
}

// decodeText returns s, a text value of column c, as UTF-8.
func decodeText(c *Column, s string) (string, error) {
	switch {
	case c.Charset == "" || utf8Charsets[c.Charset]:
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("column %s: value is not valid UTF-8", c.Name)
		}
		return s, nil
	case c.Charset == "latin1":
		return decodeLatin1(s), nil
	}
	enc := decoders[c.Charset]
	if enc == nil {
		return "", fmt.Errorf("column %s: character set %s is not supported (convert the column to utf8mb4)", c.Name, c.Charset)
	}
	out, err := enc.NewDecoder().String(s)
	if err == nil && !unicodeCharsets[c.Charset] && strings.ContainsRune(out, utf8.RuneError) {
		err = errors.New("bytes that are not of the character set")
	}
	if err != nil {
		return "", fmt.Errorf("column %s: %s value: %v", c.Name, c.Charset, err)
	}
	return out, nil
}

// decodeMembers decodes a binlog column's ENUM or SET member names, which
// the TABLE_MAP carries in the column's character set.
func decodeMembers(c *Column) error {
	for i, m := range c.Members {
		s, err := decodeText(c, m)
		if err != nil {
			return err
		}
		c.Members[i] = s
	}
	return nil
}
