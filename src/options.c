#include "options.h"

#include <stdint.h>
#include <string.h>

static void *field(const void *base, const Option *o) { return (char *)base + o->offset; }

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

static int find(const Option *opts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name)) return i;
    return -1;
}

static int set_value(const Option *o, void *base, const char *s, Error *err) {
    void *p = field(base, o);
    if (o->type == OPT_INT) {
        int64_t v;
        if (parse_i64(s, (int64_t)o->lo, (int64_t)o->hi, &v))
            return err_set(err, "%s '%s': expected an integer in [%.0f, %.0f]", o->name, s, o->lo, o->hi);
        *(int64_t *)p = v;
    } else if (o->type == OPT_FLOAT) {
        double v;
        if (parse_f64(s, o->lo, o->hi, &v))
            return err_set(err, "%s '%s': expected a finite number in [%g, %g]", o->name, s, o->lo, o->hi);
        *(double *)p = v;
    } else {
        *(const char **)p = s;
    }
    return 0;
}

int options_parse(const Option *opts, int n, void *base, unsigned char *given,
                  int argc, char **argv, const char **positional, int max_pos, int *n_pos,
                  Error *err) {
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return 1;
        if (a[0] != '-' || a[1] == '\0') {
            if (*n_pos >= max_pos) return err_set(err, "unexpected argument '%s'", a);
            positional[(*n_pos)++] = a;
            continue;
        }
        int k = find(opts, n, a);
        if (k < 0) return err_set(err, "unknown option '%s'", a);
        given[k] = 1;
        if (opts[k].type == OPT_FLAG) {
            *(int *)field(base, &opts[k]) = 1;
            continue;
        }
        if (i + 1 >= argc) return err_set(err, "%s needs a value", a);
        if (set_value(&opts[k], base, argv[++i], err)) return -1;
    }
    return 0;
}

void options_usage(FILE *f, const Option *opts, int n, const void *base) {
    for (int i = 0; i < n; i++) {
        char def[256], left[64];
        option_format(&opts[i], base, def, sizeof def);
        const char *meta = opts[i].type == OPT_INT ? " N" : opts[i].type == OPT_FLOAT ? " X"
                         : opts[i].type == OPT_STR ? " S" : "";
        snprintf(left, sizeof left, "%s%s", opts[i].name, meta);
        if (opts[i].type == OPT_FLAG || !def[0] || !strcmp(def, "nan")) // nan: "the default" is in the help
            fprintf(f, "  %-20s %s\n", left, opts[i].help);
        else
            fprintf(f, "  %-20s %s (default: %s)\n", left, opts[i].help, def);
    }
}
