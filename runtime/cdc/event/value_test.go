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
		in   string
		want int64
		zero bool
		err  bool
	}{
		{in: "1970-01-01 00:00:00", want: 0},
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
		got, zero, err := parseDatetime(c.in)
		if (err != nil) != c.err || zero != c.zero || !c.err && !c.zero && got != c.want {
			t.Errorf("parseDatetime(%q) = %d, %v, %v; want %d, zero %v, error %v", c.in, got, zero, err, c.want, c.zero, c.err)
		}
	}
}
