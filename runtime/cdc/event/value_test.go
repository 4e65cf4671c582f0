package event

import (
	"testing"
	"time"
)

// civilDays against time.Date, for every day of years at the edges of
// MySQL's range and around the epoch, days past a month's end included.
func TestCivilDays(t *testing.T) {
	for _, y := range []int64{0, 1, 4, 100, 400, 1582, 1899, 1969, 1970, 2000, 2024, 2100, 9999} {
		for m := int64(1); m <= 12; m++ {
			for d := int64(1); d <= 31; d++ {
				want := floorDiv(time.Date(int(y), time.Month(m), int(d), 0, 0, 0, 0, time.UTC).Unix(), 86400)
				if got := civilDays(y, m, d); got != want {
					t.Fatalf("civilDays(%04d-%02d-%02d) = %d, want %d", y, m, d, got, want)
				}
			}
		}
	}
}

func TestParseDatetime(t *testing.T) {
	for _, c := range []struct {
		in     string
		adjust bool
		want   int64
		zero   bool
		err    bool
	}{
		{in: "1970-01-01 00:00:00", want: 0},
		// enable.time.adjuster: years 0-69 are 2000-2069, 70-99 1970-1999.
		{in: "0018-03-30 00:00:00", adjust: true, want: time.Date(2018, 3, 30, 0, 0, 0, 0, time.UTC).UnixMicro()},
		{in: "0000-01-01 00:00:00", adjust: true, want: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()},
		{in: "0069-12-31 00:00:00", adjust: true, want: time.Date(2069, 12, 31, 0, 0, 0, 0, time.UTC).UnixMicro()},
		{in: "0070-01-01 00:00:00", adjust: true, want: 0},
		{in: "0099-12-31 00:00:00", adjust: true, want: time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC).UnixMicro()},
		{in: "0100-01-01 00:00:00", adjust: true, want: time.Date(100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()},
		{in: "0018-03-30 00:00:00", want: time.Date(18, 3, 30, 0, 0, 0, 0, time.UTC).UnixMicro()},
		{in: "0000-00-00 00:00:00", adjust: true, zero: true},
		{in: "2024-01-02 03:04:05.123456", want: time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC).UnixMicro()},
		{in: "1969-12-31 23:59:59.5", want: -500_000},
		{in: "0001-01-01 00:00:00", want: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()},
		{in: "9999-12-31T23:59:59.999999", want: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()},
		{in: "0000-00-00 00:00:00", zero: true},
		{in: "2024-13-01 00:00:00", err: true},
		{in: "2024-01-01 0a:00:00", err: true},
		{in: "2024-01-01 00-00-00", err: true},
		{in: "2024-01-01", err: true},
	} {
		got, zero, err := parseDatetime(c.in, c.adjust)
		if (err != nil) != c.err || zero != c.zero || !c.err && !c.zero && got != c.want {
			t.Errorf("parseDatetime(%q, adjust %v) = %d, %v, %v; want %d, zero %v, error %v", c.in, c.adjust, got, zero, err, c.want, c.zero, c.err)
		}
	}
}

// TestTimeAdjuster: DATE and DATETIME years 0-99 are adjusted unless the
// source turns the adjuster off (RawYears); TIMESTAMP never needs it.
func TestTimeAdjuster(t *testing.T) {
	for _, c := range []struct {
		col  Column
		in   string
		want string
	}{
		{Column{Kind: KindDate}, "0018-04-01", "17622"},
		{Column{Kind: KindDate, RawYears: true}, "0018-04-01", "-712863"},
		{Column{Kind: KindDatetime}, "0075-01-01 00:00:00", "157766400000"},
		{Column{Kind: KindDatetime, RawYears: true}, "0075-01-01 00:00:00", "-59800377600000"},
		{Column{Kind: KindDate}, "2018-04-01", "17622"},
	} {
		got, err := AppendValue(nil, &c.col, c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("%s (raw years %v) %q = %s, %v; want %s", c.col.Kind, c.col.RawYears, c.in, got, err, c.want)
		}
	}
}
