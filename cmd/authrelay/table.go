package main

import "unicode/utf8"

// tableCellMax is the widest a cell of a list table (role list, user list)
// may be, in characters. tabwriter pads every row of a column to its widest
// cell, so one role with a thousand subjects would otherwise pad every row
// of the table to tens of kilobytes. --json prints every cell whole.
const tableCellMax = 60

// tableCell returns s cut to tableCellMax characters, ending in "…" when it
// was cut.
func tableCell(s string) string {
	if utf8.RuneCountInString(s) <= tableCellMax {
		return s
	}
	n := 0
	for i := range s {
		if n == tableCellMax-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
