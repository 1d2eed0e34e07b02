#include "options.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *option_field(const Option *o, const void *base) { return (char *)base + o->offset; }
static void *field(const void *base, const Option *o) { return option_field(o, base); }

void option_format(const Option *o, const void *base, char *buf, size_t cap) {
    void *p = field(base, o);
    switch (o->type) {
    case OPT_INT: snprintf(buf, cap, "%lld", (long long)*(int64_t *)p); break;
    case OPT_FLOAT: snprintf(buf, cap, "%g", *(double *)p); break;
    case OPT_STR: snprintf(buf, cap, "%s", *(const char **)p ? *(const char **)p : ""); break;
    case OPT_FLAG: snprintf(buf, cap, "%s", *(int *)p ? "on" : "off"); break;
    }
}

int options_check_ranges(const Option *opts, int n, const void *base, Error *err) {
    for (int i = 0; i < n; i++) {
        const void *p = field(base, &opts[i]);
        double v;
        if (opts[i].type == OPT_INT) v = (double)*(const int64_t *)p;
        else if (opts[i].type == OPT_FLOAT) v = *(const double *)p;
        else continue;
        if (!(v >= opts[i].lo && v <= opts[i].hi)) // also rejects NaN
            return err_set(err, "%s = %g is out of range [%g, %g]", opts[i].name, v, opts[i].lo, opts[i].hi);
    }
    return 0;
}

void option_copy(const Option *o, void *dst, const void *src) {
    size_t size = o->type == OPT_INT ? sizeof(int64_t) : o->type == OPT_FLOAT ? sizeof(double)
                : o->type == OPT_STR ? sizeof(const char *) : sizeof(int);
    memcpy(field(dst, o), field(src, o), size);
}

// The option named by the first len characters of name.
static int find(const Option *opts, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (!strncmp(opts[i].name, name, len) && opts[i].name[len] == '\0') return i;
    return -1;
}

static int set_value(const Option *o, void *base, const char *s, Error *err) {
    void *p = field(base, o);
    char shown[200];
    if (o->type == OPT_INT) {
        int64_t v;
        if (parse_i64(s, (int64_t)o->lo, (int64_t)o->hi, &v))
            return err_set(err, "%s '%s': expected an integer in [%.0f, %.0f]", o->name, printable(s, -1, shown, sizeof shown),
                           o->lo, o->hi);
        *(int64_t *)p = v;
    } else if (o->type == OPT_FLOAT) {
        double v;
        if (parse_f64(s, o->lo, o->hi, &v))
            return err_set(err, "%s '%s': expected a finite number in [%g, %g]", o->name,
                           printable(s, -1, shown, sizeof shown), o->lo, o->hi);
        *(double *)p = v;
    } else {
        *(const char **)p = s;
        if (o->choice && option_choice_index(o, base) < 0) {
            char list[256] = "";
            for (int i = 0; o->choice(i); i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", o->choice(i));
            return err_set(err, "%s '%s': expected one of %s", o->name, printable(s, -1, shown, sizeof shown), list);
        }
    }
    return 0;
}

int option_choice_index(const Option *o, const void *base) {
    const char *v = *(const char **)field(base, o);
    for (int i = 0; v && o->choice && o->choice(i); i++)
        if (!strcmp(v, o->choice(i))) return i;
    return -1;
}

int options_parse(const Option *opts, int n, void *base, unsigned char *given,
                  int argc, char **argv, const char **positional, int max_pos, int *n_pos,
                  Error *err) {
    char shown[200]; // an argument as a message shows it (printable)
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
        if (!strcmp(a, "--version")) return 2;
        if (a[0] != '-' || a[1] == '\0') {
            if (*n_pos >= max_pos) return err_set(err, "unexpected argument '%s'", printable(a, -1, shown, sizeof shown));
            positional[(*n_pos)++] = a;
            continue;
        }
        // a long option's value may follow an '=' in the same argument, as in GNU tools
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        int k = find(opts, n, a, len);
        if (k < 0) return err_set(err, "unknown option '%s'", printable(a, (long)len, shown, sizeof shown));
        if (given[k] < 255) given[k]++;
        if (opts[k].type == OPT_FLAG) {
            if (eq) return err_set(err, "%s takes no value (got '%s')", opts[k].name, printable(a, -1, shown, sizeof shown));
            *(int *)field(base, &opts[k]) = 1;
            continue;
        }
        if (!eq && i + 1 >= argc) return err_set(err, "%s needs a value", a);
        if (set_value(&opts[k], base, eq ? eq + 1 : argv[++i], err)) return -1;
    }
    return 0;
}

int options_check_repeats(const Option *opts, int n, const unsigned char *given, Error *err) {
    for (int i = 0; i < n; i++)
        if (given[i] > 1 && !opts[i].repeat)
            return err_set(err, "%s given %s%d times: give it once", opts[i].name, given[i] == 255 ? "at least " : "",
                           given[i]);
    return 0;
}

void options_defaults(const Option *opts, int n, void *base) {
    for (int i = 0; i < n; i++) {
        void *p = field(base, &opts[i]);
        switch (opts[i].type) {
        case OPT_INT: *(int64_t *)p = (int64_t)opts[i].def; break;
        case OPT_FLOAT: *(double *)p = opts[i].def; break;
        case OPT_STR: *(const char **)p = opts[i].def_str; break;
        case OPT_FLAG: *(int *)p = opts[i].def != 0; break;
        }
    }
}

void options_usage(FILE *f, const Option *opts, int n, const void *base) {
    for (int i = 0; i < n; i++) {
        char def[256], left[64], choices[200] = "";
        option_format(&opts[i], base, def, sizeof def);
        const char *meta = opts[i].choice ? " NAME" : opts[i].type == OPT_INT ? " N" : opts[i].type == OPT_FLOAT ? " X"
                         : opts[i].type == OPT_STR ? " S" : "";
        snprintf(left, sizeof left, "%s%s", opts[i].name, meta);
        for (int c = 0; opts[i].choice && opts[i].choice(c); c++) // its values, from the table that has them
            snprintf(choices + strlen(choices), sizeof choices - strlen(choices), "%s%s", c ? ", " : " (one of: ",
                     opts[i].choice(c));
        if (choices[0]) snprintf(choices + strlen(choices), sizeof choices - strlen(choices), ")");
        const char *repeat = opts[i].repeat ? " (given again: the last wins)" : "";
        if (opts[i].type == OPT_FLAG || !def[0] || !strcmp(def, "nan")) // nan: "the default" is in the help
            fprintf(f, "  %-20s %s%s%s\n", left, opts[i].help, choices, repeat);
        else
            fprintf(f, "  %-20s %s%s (default: %s)%s\n", left, opts[i].help, choices, def, repeat);
    }
}

int option_same(const Option *o, const void *a, const void *b) {
    size_t size = o->type == OPT_INT ? sizeof(int64_t) : o->type == OPT_FLOAT ? sizeof(double)
                : o->type == OPT_STR ? sizeof(const char *) : sizeof(int);
    return !memcmp(field(a, o), field(b, o), size);
}

// The shortest %g text that reads back as v (or, with float32, as the float32
// v): "10" rather than "1e+01", which also reads back.
static void shortest_number(double v, int float32, char *buf, size_t cap) {
    char t[64];
    buf[0] = 0;
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(t, sizeof t, "%.*g", digits, v);
        double back = strtod(t, NULL);
        if ((float32 ? (float)back == (float)v : back == v) && (!buf[0] || strlen(t) < strlen(buf)))
            snprintf(buf, cap, "%s", t);
    }
}

// A string as one shell word: as it is when it holds only safe characters,
// else in single quotes (a quote inside as '\'').
static void shell_word(const char *s, char *buf, size_t cap) {
    int safe = *s != 0;
    for (const char *p = s; *p && safe; p++)
        safe = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
               strchr("-_./,:+=@%", *p);
    if (safe) {
        snprintf(buf, cap, "%s", s);
        return;
    }
    size_t n = 0;
    if (cap < 3) {
        if (cap) buf[0] = 0;
        return;
    }
    buf[n++] = '\'';
    for (const char *p = s; *p && n + 6 < cap; p++) {
        if (*p == '\'') memcpy(buf + n, "'\\''", 4), n += 4;
        else buf[n++] = *p;
    }
    buf[n++] = '\'';
    buf[n] = 0;
}

int option_flag_text(const Option *o, const void *base, int float32, char *buf, size_t cap) {
    const void *p = field(base, o);
    char value[4200];
    switch (o->type) {
    case OPT_FLAG:
        if (!*(const int *)p) return 0;
        snprintf(buf, cap, "%s", o->name);
        return 1;
    case OPT_INT: snprintf(value, sizeof value, "%lld", (long long)*(const int64_t *)p); break;
    case OPT_FLOAT: shortest_number(*(const double *)p, float32, value, sizeof value); break;
    case OPT_STR:
        if (!*(const char *const *)p) return 0;
        shell_word(*(const char *const *)p, value, sizeof value);
        break;
    }
    snprintf(buf, cap, "%s %s", o->name, value);
    return 1;
}
