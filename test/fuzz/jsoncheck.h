/*
 * jsoncheck.h: a strict reader of the JSON the shim writes for a form or query payload (an
 * object whose values are strings or arrays of strings), for the harnesses' checks.
 */
#ifndef JSONCHECK_H
#define JSONCHECK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct JcString
{
	char *data; /* decoded bytes (\u00XX as the byte XX), NUL-terminated */
	size_t len;
} JcString;

typedef struct JcEntry
{
	JcString key;
	bool is_array;
	JcString *values;
	size_t nvalues;
} JcEntry;

typedef struct JcObject
{
	JcEntry *entries;
	size_t count;
} JcObject;

/*
 * Reads text[0..len) as one JSON object of strings and arrays of strings, nothing before
 * or after it. False (with *why) when it is not valid JSON of that shape.
 */
extern bool jc_read_form_object(const char *text, size_t len, JcObject *out, const char **why);
extern void jc_free(JcObject *obj);

/* True when text[0..len) is one valid JSON value (any shape), nothing after it. */
extern bool jc_valid(const char *text, size_t len);

#endif /* JSONCHECK_H */
