package main

import "strconv"

// plural returns "1 user" or "n users": noun with its count, and an s for
// any count but one.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
