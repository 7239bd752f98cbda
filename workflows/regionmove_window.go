package workflows

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The region move's maintenance window: the pure maths (tested by tables) and the wait.

// ParseWindowClock parses "HH:MM" (24-hour clock).
func ParseWindowClock(s string) (hour, minute int, err error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hour, err1 := strconv.Atoi(h)
	minute, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		return 0, 0, fmt.Errorf("%q is not HH:MM (00:00..23:59)", s)
	}
	return hour, minute, nil
}

// WindowAt reports whether t is inside the window and the bounds of the occurrence that
// contains t or, when outside, of the next one. Bounds are wall-clock times in the
// window's zone, so a window keeps its local hours across DST changes (and is an hour
// shorter or longer on the night the clocks change). A start that does not exist that day
// (inside a spring-forward gap) is normalised by time.Date.
func WindowAt(mw MaintenanceWindow, t time.Time) (inside bool, opens, closes time.Time, err error) {
	zone := mw.Zone
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return false, time.Time{}, time.Time{}, fmt.Errorf("maintenance window zone %q: %w", zone, err)
	}
	sh, sm, err := ParseWindowClock(mw.Start)
	if err != nil {
		return false, time.Time{}, time.Time{}, fmt.Errorf("maintenance window start: %w", err)
	}
	eh, em, err := ParseWindowClock(mw.End)
	if err != nil {
		return false, time.Time{}, time.Time{}, fmt.Errorf("maintenance window end: %w", err)
	}
	crosses := eh*60+em <= sh*60+sm
	y, mo, d := t.In(loc).Date()
	// Yesterday's occurrence may still be open (a window crossing midnight); one of today's
	// or tomorrow's is always the next.
	for off := -1; off <= 2; off++ {
		o := time.Date(y, mo, d+off, sh, sm, 0, 0, loc)
		cd := d + off
		if crosses {
			cd++
		}
		c := time.Date(y, mo, cd, eh, em, 0, 0, loc)
		if !t.Before(o) && t.Before(c) {
			return true, o, c, nil
		}
		if o.After(t) {
			return false, o, c, nil
		}
	}
	return false, time.Time{}, time.Time{}, fmt.Errorf("maintenance window %s: no opening found after %s", windowText(mw), t)
}

func windowText(mw MaintenanceWindow) string {
	z := mw.Zone
	if z == "" {
		z = "UTC"
	}
	return mw.Start + "-" + mw.End + " " + z
}

// waitWindow holds until the maintenance window is open; true when a rollback interrupted.
// The opening is computed from workflow time in a SideEffect, so the decision is recorded
// in history and a worker with other time-zone data replays the same wait.
func (w *regionMove) waitWindow(ctx workflow.Context, phase string) (bool, error) {
	mw := *w.spec.Window
	for {
		type at struct {
			Inside bool
			Opens  time.Time
			Local  string // the opening in the window's zone, for people
			Err    string
		}
		now := workflow.Now(ctx)
		var a at
		err := workflow.SideEffect(ctx, func(workflow.Context) any {
			inside, opens, _, err := WindowAt(mw, now)
			if err != nil {
				return at{Err: err.Error()}
			}
			return at{Inside: inside, Opens: opens, Local: opens.Format("2006-01-02 15:04 MST")}
		}).Get(&a)
		if err != nil {
			return false, err
		}
		if a.Err != "" {
			return false, temporal.NewNonRetryableApplicationError(a.Err, ErrPlanInvalid, nil)
		}
		if a.Inside {
			w.s.Audit(ctx, SystemIdentity, "window open", fmt.Sprintf("maintenance window %s is open; %s may begin", windowText(mw), phase), "window "+phase)
			w.setPhaseState(ctx, phase, PhasePending, "")
			return false, nil
		}
		msg := fmt.Sprintf("waiting for maintenance window (opens at %s)", a.Local)
		w.s.SetMessage(ctx, msg)
		w.setPhaseState(ctx, phase, PhasePending, msg)
		wait := min(a.Opens.Sub(now), regionWindowPollCap)
		interrupted, err := w.s.Sleep(ctx, wait, fmt.Sprintf("%s: %s", phase, msg))
		if err != nil || interrupted {
			return interrupted, err
		}
		// A pause while waiting holds the phase even once the window opens.
		if err := w.s.WaitWhilePaused(ctx); err != nil {
			return false, err
		}
		if w.s.RollbackRequest() != nil {
			return true, nil
		}
	}
}
