package loopback

import "testing"

// TestPortsDistinct: many ports asked for in a row are all different, the
// case a listen-and-close helper gets wrong.
func TestPortsDistinct(t *testing.T) {
	seen := map[int]bool{}
	for _, p := range Ports(t, 200) {
		if p <= 0 || seen[p] {
			t.Fatalf("port %d given twice or invalid", p)
		}
		seen[p] = true
	}
}
