package main

import (
	"fmt"
	"strconv"
	"strings"
)

// busyLimit is the share of the machine's CPU, in percent, that other processes may use
// during the measured rounds before a report withholds its goal verdicts: beyond it the
// arms competed with strangers for the cores, and a ratio says more about them than
// about the arms.
const busyLimit = 20

// tooBusy is the verdict a goal line gets instead of met, not met or missed when the
// machine was busier than busyLimit.
const tooBusy = "too busy to judge"

// busyShare parses the share of the machine's CPU that other processes used, as
// profiledRoundsWith prints it ("35%"); ok is false where it is unknown.
func busyShare(otherCPU string) (percent float64, ok bool) {
	s, found := strings.CutSuffix(strings.TrimSpace(otherCPU), "%")
	if !found {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// dashVerdicts are the verdicts of goal lines that state one after the goal's dash
// ("goal: … — met (0.97×)"), and partVerdicts those that state one per part, in
// parentheses ("Goal (…): … 0.93× (missed); …"). Longer ones first, so that "not met"
// is never read as "met".
var (
	dashVerdicts = []string{"— not met (", "— missed (", "— met ("}
	partVerdicts = []string{"(not met)", "(missed)", "(met)"}
)

// isGoalLine reports whether line is a goal line of a report: "goal: …" or "Goal (…".
func isGoalLine(line string) bool {
	return strings.HasPrefix(line, "goal:") || strings.HasPrefix(line, "Goal (")
}

// judgeGoals returns report with, when other processes used more than busyLimit % of
// the machine's CPU during the run (otherCPU as profiledRoundsWith prints it), every
// verdict of its goal lines replaced by tooBusy, with the figure, the ratios left as
// they were. Where the figure is unknown or within the limit it returns report as is.
func judgeGoals(report, otherCPU string) string {
	busy, ok := busyShare(otherCPU)
	if !ok || busy <= busyLimit {
		return report
	}
	why := fmt.Sprintf("other processes used %s of the CPU, over %d%%", strings.TrimSpace(otherCPU), busyLimit)
	var b strings.Builder
	b.Grow(len(report) + 128)
	for line := range strings.Lines(report) {
		if isGoalLine(line) {
			line = withholdVerdicts(line, why)
		}
		b.WriteString(line)
	}
	return b.String()
}

// withholdVerdicts replaces the verdicts of the goal line with tooBusy: "— met (0.97×)"
// becomes "— too busy to judge (why; 0.97×)", and each "(met)" "(too busy to judge)",
// the line then ending with why.
func withholdVerdicts(line, why string) string {
	body, nl := strings.CutSuffix(line, "\n")
	for _, v := range dashVerdicts {
		body = strings.ReplaceAll(body, v, "— "+tooBusy+" ("+why+"; ")
	}
	parts := false
	for _, v := range partVerdicts {
		if strings.Contains(body, v) {
			parts = true
			body = strings.ReplaceAll(body, v, "("+tooBusy+")")
		}
	}
	if parts {
		body += " Verdicts withheld: " + why + "."
	}
	if nl {
		body += "\n"
	}
	return body
}
