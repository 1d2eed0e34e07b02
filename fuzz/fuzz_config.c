// libFuzzer target: a config.txt (one flag per line, as `xargs -a config.txt
// train_llama` reads it) through the trainer's settings table (src/settings.c):
// parsing, presets, the check for flags that do nothing, and the record.
// Properties: no crash, no undefined behaviour, no leak; a refusal is one
// line; and settings that make a valid model round-trip: what the trainer
// writes of their record (config.txt's text) parses back, without a
// refusal, to the same model config and the same run block.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/settings.h"

#define MAX_ARGS 512

// Splits text in place into argv[1..] the way xargs does for what
// settings_write writes: words separated by blanks and newlines, a word in
// single quotes taken whole, and '\'' a quote inside one. Returns argc.
static int split_words(char *text, char **argv) {
    int argc = 1;
    argv[0] = "train_llama";
    char *r = text, *w = text;
    while (*r && argc < MAX_ARGS) {
        while (*r == ' ' || *r == '\n' || *r == '\t') r++;
        if (!*r) break;
        argv[argc++] = w;
        while (*r && *r != ' ' && *r != '\n' && *r != '\t') {
            if (*r == '\\' && r[1]) r++, *w++ = *r++;
            else if (*r == '\'') {
                for (r++; *r && *r != '\''; ) *w++ = *r++;
                if (*r) r++;
            } else *w++ = *r++;
        }
        if (*r) r++;
        *w++ = 0;
    }
    return argc;
}

// Parsed and checked as the trainer does before it builds the model; 0 when
// the settings make a model to train.
static int settings_of(char *text, Settings *s, ModelConfig *c, char **argv) {
    unsigned char from[MAX_SETTINGS];
    Error err = {{0}};
    int argc = split_words(text, argv);
    int rc = settings_parse(s, from, argc, argv, NULL, &err);
    if (!rc && !settings_check_alone(from, &err) && !settings_check_values(s, &err)) {
        s->ranks = 1;
        if (!settings_applicable(s, NULL, from, NULL, &err)) {
            *c = settings_config(s);
            return config_validate(c, &err);
        }
    }
    if (rc <= 0 && (!err.msg[0] || strchr(err.msg, '\n'))) __builtin_trap(); // a refusal says one line
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1), *back = NULL, *argv[MAX_ARGS], *argv2[MAX_ARGS];
    size_t n = 0;
    Settings s, t;
    ModelConfig c, c2;
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    if (!settings_of(text, &s, &c, argv)) {
        // config.txt is what the checkpoint records (write_config_file): the
        // run block and the model header unpacked, the data specs as given
        int64_t rb[RUN_BLOCK_SLOTS], rb2[RUN_BLOCK_SLOTS];
        Settings rec = settings_defaults();
        DataHashes h;
        Error err = {{0}};
        run_block_pack(&s, (DataHashes){0, 0}, rb);
        if (run_block_unpack(rb, &c, NULL, &rec, &h, "config", &err)) __builtin_trap();
        rec.data = s.data, rec.val_data = s.val_data;
        FILE *f = open_memstream(&back, &n);
        if (!f) abort();
        settings_write(f, &rec, 0, "0.9-fuzz");
        fclose(f);
        if (settings_of(back, &t, &c2, argv2)) __builtin_trap(); // config.txt must be accepted
        run_block_pack(&t, (DataHashes){0, 0}, rb2);
        if (memcmp(&c, &c2, sizeof c) || memcmp(rb, rb2, sizeof rb)) __builtin_trap(); // the same run
    }
    free(back);
    free(text);
    return 0;
}
