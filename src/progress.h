// The trainer's progress line on stderr. On a terminal one line is rewritten
// in place every step. Off a terminal (a log file) a line is printed at each
// evaluation, at the end, and between them once `every` seconds have passed
// since the last line (LLAMA_PROGRESS_SECONDS, default 30), so that a log
// shows a slow run is alive.
#ifndef PROGRESS_H
#define PROGRESS_H

#include <stdint.h>

#include "common.h"

typedef struct {
    double every;  // off a terminal: seconds between lines at most
    double t;      // when the last line was printed (now_seconds)
    int line_len;  // on a terminal: the length of the line shown, 0 when none is open
} Progress;

// What the line after a step says. The validation loss between evaluations
// is the last evaluation's: the line names its step when that is not this one.
typedef struct {
    int64_t step, steps;
    double loss, tok_s, eta_s;
    double val, val_bpb; // the last evaluation: nats, bits per byte
    int64_t val_step;    // and its step
} ProgressLine;

// No line open, every from LLAMA_PROGRESS_SECONDS (default 30); the caller
// sets t when the steps start. Returns 0, or -1 when the variable is not a
// number of seconds in [0, 1e9] (message in err).
int progress_init(Progress *p, Error *err);

// The line after a step (the last step's: final), printed or not as above.
// Ends the terminal's line after the final step.
void progress_show(Progress *p, const ProgressLine *x, int final, double now);
// Ends the terminal's line, if one is open: what is printed next starts on a
// fresh line.
void progress_end(Progress *p);

#endif
