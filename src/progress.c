#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int progress_init(Progress *p, Error *err) {
    const char *every = getenv("LLAMA_PROGRESS_SECONDS");
    *p = (Progress){.every = 30.0};
    if (every && parse_f64(every, 0, 1e9, &p->every))
        return err_set(err, "LLAMA_PROGRESS_SECONDS '%s': expected seconds in [0, 1e9]", every);
    return 0;
}

void progress_show(Progress *p, const ProgressLine *x, int final, double now) {
    int tty = isatty(STDERR_FILENO), fresh = x->val_step == x->step;
    double eta_s = x->eta_s;
    if (!(eta_s >= 0 && eta_s < 1e8)) eta_s = eta_s >= 1e8 ? 1e8 : 0; // (int) of it stays defined
    if (!tty && !final && !fresh && now - p->t < p->every) return;
    p->t = now;
    char at[40] = "";
    if (!fresh) snprintf(at, sizeof at, " @step %lld", (long long)x->val_step);
    char line[256];
    int len = snprintf(line, sizeof line, "step %lld/%lld | loss %.4f | val %.4f%s (%.4f bpb) | %.0f tok/s | ETA %dm%02ds",
                       (long long)x->step, (long long)x->steps, x->loss, x->val, at, x->val_bpb, x->tok_s,
                       (int)(eta_s / 60), (int)eta_s % 60);
    if (!tty) {
        fprintf(stderr, "%s\n", line);
        return;
    }
    // blanks over the rest of a longer previous line
    fprintf(stderr, "\r%s%*s", line, p->line_len > len ? p->line_len - len : 0, "");
    p->line_len = len;
    if (final) progress_end(p);
}

void progress_end(Progress *p) {
    if (p->line_len) fputc('\n', stderr);
    p->line_len = 0;
}
