/*
 * config.h - the INI configuration (contract §10).
 *
 * Configuration is one table of known keys.  Each module contributes its own
 * keys with defaults and a validator (fw_config_add_keys), so that the table
 * stays next to the code that reads it.  Sections whose names start with a
 * registered prefix ("rule.", "route.", "supervisor.") accept any key; the
 * module that owns the prefix validates them when it reads them.
 *
 * fw_config_load() parses the file with inih, then applies the -o
 * section.key=value overrides.  An unknown section or key, or a bad value,
 * fails with "FILE:LINE: section.key: reason".
 *
 * Values are read with fw_config_get() etc. after loading; they live as long
 * as the fw_config.
 */
#ifndef FW_CONFIG_H
#define FW_CONFIG_H

#include <stdint.h>

typedef struct fw_config fw_config;

typedef enum {
    FW_CFG_STRING = 0,
    FW_CFG_INT,      /* int64 */
    FW_CFG_BOOL,     /* true/false/yes/no/on/off/1/0 */
    FW_CFG_DURATION, /* seconds; "30", "30s", "5m", "4h", "1d" */
} fw_config_type;

typedef struct fw_config_key {
    const char *name; /* "sms.rate" */
    fw_config_type type;
    const char *def;  /* default text, or NULL for none */
    int64_t min, max; /* bounds for INT/DURATION when min < max */
    /* Extra check: return NULL if fine, else a static reason. */
    const char *(*validate)(const char *value);
    const char *help;
} fw_config_key;

fw_config *fw_config_new(void);
void fw_config_free(fw_config *c);
/* Register keys (the array must outlive the config). */
void fw_config_add_keys(fw_config *c, const fw_config_key *keys, int n);
void fw_config_add_prefix(fw_config *c, const char *section_prefix);

/* Parse `path` (NULL: defaults only) then apply overrides "section.key=value".
 * Returns 0 or -1 with a message in err. */
int fw_config_load(fw_config *c, const char *path, char *const *overrides, int noverrides,
                   char *err, int errlen);
/* Set one value as an override would (validated). */
int fw_config_set(fw_config *c, const char *name, const char *value, char *err, int errlen);

const char *fw_config_get(const fw_config *c, const char *name); /* NULL if unset */
int64_t fw_config_int(const fw_config *c, const char *name);
int fw_config_bool(const fw_config *c, const char *name);
const char *fw_config_path(const fw_config *c); /* the file loaded, or NULL */
/* The directory of the config file's parent's parent, used to resolve
 * relative paths ("etc/templates") the way an operator expects: relative to
 * the working directory.  (Kept simple: paths are relative to the cwd.) */

/* Iterate dynamic sections: calls fn for every key in sections starting
 * with prefix; section is the full section name ("rule.cash_over_limit"). */
typedef void (*fw_config_iter_fn)(const char *section, const char *key, const char *value,
                                  void *ud);
void fw_config_each(const fw_config *c, const char *prefix, fw_config_iter_fn fn, void *ud);

/* All core keys (nats.*, store.*, http.*, auth.*, rules.*, time.*, log.*,
 * intake.*).  Modules register their own. */
extern const fw_config_key fw_core_config_keys[];
extern const int fw_core_config_nkeys;

#endif
