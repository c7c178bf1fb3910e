/*
 * schema.h - every module's schema and the ordered migration list.
 */
#ifndef FW_SCHEMA_H
#define FW_SCHEMA_H

#include "daemon/store.h"

extern const char fw_core_schema[];            /* daemon/schema.c: events, dlq */
extern const char fw_ledger_schema[];          /* daemon/ledger.c */
extern const char fw_rules_schema[];           /* lua/: rule-set versions and stats */
extern const char fw_alerts_schema[];          /* alerts/ */
extern const char fw_alerts_feed_seq_schema[]; /* alerts/schema.c: alert_feed's n never repeats */
extern const char fw_sms_schema[];             /* sms/ */
/* Appended migrations. */
extern const char fw_ledger_lean_schema[];       /* daemon/ledger_schema.c: unused indexes */
extern const char fw_core_lean_schema[];         /* daemon/schema.c: unused events index */
extern const char fw_ledger_write_lean_schema[]; /* daemon/ledger_schema.c: indexes per voucher */
extern const char fw_ledger_bodies_schema[];     /* daemon/ledger_schema.c: bodies apart */

extern const fw_migration fw_migrations[];
extern const int fw_nmigrations;

#endif
