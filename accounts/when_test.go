package accounts

import (
	"strings"
	"testing"
	"time"
)

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 500_000_000, time.FixedZone("CET", 3600))
	cases := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "never"},
		{in: ""},
		{in: "2027-01-31T18:00:00Z", want: time.Date(2027, 1, 31, 18, 0, 0, 0, time.UTC)},
		{in: "2027-01-31T19:00:00+01:00", want: time.Date(2027, 1, 31, 18, 0, 0, 0, time.UTC)},
		{in: "2027-01-31", want: time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)},
		{in: "720h", want: time.Date(2026, 12, 31, 9, 0, 0, 0, time.UTC)},
		{in: "1s", want: time.Date(2026, 12, 1, 9, 0, 1, 0, time.UTC)},
		{in: "90d", want: time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)},
		{in: "0d", wantErr: `--expires "0d": want never`},
		{in: "99999999d", wantErr: `--expires "99999999d": want never`},
		{in: "0s", wantErr: `--expires "0s": want never, a time such as 2027-01-31T18:00:00Z, a date such as 2027-01-31, or a duration such as 90d or 720h`},
		{in: "-1h", wantErr: `--expires "-1h": want never, a time such as 2027-01-31T18:00:00Z, a date such as 2027-01-31, or a duration such as 90d or 720h`},
		{in: "tomorrow", wantErr: `--expires "tomorrow": want never, a time such as 2027-01-31T18:00:00Z, a date such as 2027-01-31, or a duration such as 90d or 720h`},
		{in: "2027-02-30", wantErr: `--expires "2027-02-30": want never`},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseExpiry(c.in, now)
			if c.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
					t.Fatalf("ParseExpiry(%q): error %v, want %q", c.in, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseExpiry(%q): %v", c.in, err)
			}
			if !got.Equal(c.want) || got.Location() != time.UTC {
				t.Errorf("ParseExpiry(%q) = %v, want %v in UTC", c.in, got, c.want)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "1h", want: now.Add(-time.Hour)},
		{in: "0s", want: now},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "2026-11-30T08:00:00Z", want: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)},
		{in: "2026-11-30T09:00:00+01:00", want: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)},
		{in: "2026-11-30", want: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
		{in: "-1h", wantErr: `--since "-1h": want a duration such as 1h or a time such as 2026-12-01T10:00:00Z`},
		{in: "", wantErr: `--since "": want a duration such as 1h or a time such as 2026-12-01T10:00:00Z`},
		{in: "yesterday", wantErr: `--since "yesterday": want a duration such as 1h or a time such as 2026-12-01T10:00:00Z`},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseSince(c.in, now)
			if c.wantErr != "" {
				if err == nil || err.Error() != c.wantErr {
					t.Fatalf("ParseSince(%q): error %v, want %q", c.in, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSince(%q): %v", c.in, err)
			}
			if !got.Equal(c.want) {
				t.Errorf("ParseSince(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}
