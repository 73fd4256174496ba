/*
 * pgfake.h: just enough of the PostgreSQL backend, outside the server, for the extension's
 * payload code (extension/payload.c, phone.c, fields.c) to run in a libFuzzer harness.
 *
 * What is real and what is a fake (see README.md, "The PostgreSQL fakes"):
 *   - palloc, repalloc, pfree, pstrdup, pnstrdup, psprintf: malloc per chunk (so that
 *     AddressSanitizer sees every overflow), each chunk linked into one "memory context"
 *     that pgfake_reset() frees after each input, as the server frees its contexts.
 *   - StringInfo (initStringInfo, append*), List (lappend, list_sort), pg_strncasecmp,
 *     pg_mbstrlen_with_len (the database encoding is UTF8) and day_tab: small
 *     reimplementations with the server's semantics.
 *   - Jsonb: a fake document (pgfake_doc_*) that JsonbIteratorInit/JsonbIteratorNext walk
 *     like a jsonb object (keys unique, the last duplicate wins, sorted by length then bytes,
 *     nested values as jbvBinary); numbers carry their numeric_out text. pushJsonbValue and
 *     JsonbValueToJsonb record the keys of the objects the code builds (extra, the logged
 *     payload) and abort when a secret key is pushed into one.
 *   - ereport/elog, GUC, SRF and text functions: present only to link; reaching one aborts.
 */
#ifndef PGFAKE_H
#define PGFAKE_H

#include "postgres.h"

#include "utils/jsonb.h"

/* Frees everything palloc'd since the last reset. */
extern void pgfake_reset(void);

/* The fake document: a jsonb object built pair by pair, then frozen into a Jsonb. */
typedef enum PgfakeType
{
	PGFAKE_STRING,
	PGFAKE_NUMBER, /* text as numeric_out would print it */
	PGFAKE_BOOL,
	PGFAKE_NULL,
	PGFAKE_OBJECT, /* a nested (empty) object: jbvBinary */
	PGFAKE_ARRAY   /* a nested (empty) array: jbvBinary */
} PgfakeType;

extern void pgfake_doc_begin(void);
/* key and value are copied; len in bytes (no NUL inside: jsonb cannot hold one). */
extern void pgfake_doc_add(const char *key, int keylen, PgfakeType type, const char *value,
						   int vallen);
/* The object as a Jsonb; as_array makes the root an array instead (not an object). */
extern Jsonb *pgfake_doc_finish(bool as_array);

/* After pgfake_doc_finish: the pairs as jsonb keeps them (deduplicated, sorted). */
extern int pgfake_doc_count(void);
extern void pgfake_doc_pair(int i, const char **key, int *keylen, PgfakeType *type,
							const char **value, int *vallen);

/* The keys of an object the code built (p->extra, p->logged); -1 when jb is not one. */
extern int pgfake_built_count(const Jsonb *jb);
extern void pgfake_built_key(const Jsonb *jb, int i, const char **key, int *keylen);

#endif /* PGFAKE_H */
