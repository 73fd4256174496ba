/*
 * payload.c: reads a dialer payload (jsonb) into normalised field values, validates each
 * against the field table, keeps unknown keys in extra and drops secrets (contract section 3).
 */
#include "leadintake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/numeric.h"

/* leadintake.invalid_fields: what a known field's bad value does (contract section 8). */
int li_invalid_fields = LI_INVALID_REJECT;

static const struct config_enum_entry invalid_fields_options[] = {
	{"reject", LI_INVALID_REJECT, false},
	{"keep", LI_INVALID_KEEP, false},
	{NULL, 0, false},
};

void
li_define_payload_guc(void)
{
	DefineCustomEnumVariable(
		"leadintake.invalid_fields", "What a known field's invalid value does to the call.",
		"reject: the call fails with 400 naming every bad field; keep: the field is stored as "
		"absent, its value kept in extra._invalid, and the success body carries warnings.",
		&li_invalid_fields, LI_INVALID_REJECT, invalid_fields_options, PGC_USERSET, 0, NULL, NULL,
		NULL);
}

static FieldError *
field_error(const char *key, int keylen, const char *reason)
{
	FieldError *e = palloc0(sizeof(FieldError));

	e->key = pnstrdup(key, keylen);
	e->reason = pstrdup(reason);
	return e;
}

static void
add_error(Payload *p, const char *key, int keylen, const char *reason)
{
	p->errors = lappend(p->errors, field_error(key, keylen, reason));
}

/*
 * A known field's value that failed validation: under keep a warning that carries the value
 * as sent (the field stays absent), else an error. A NUL byte is always an error: no text
 * column, not even extra, can hold it.
 */
static void
add_invalid(Payload *p, const char *key, int keylen, const char *reason, JsonbValue *sent,
			bool keepable)
{
	FieldError *e;

	if (li_invalid_fields != LI_INVALID_KEEP || !keepable)
	{
		add_error(p, key, keylen, reason);
		return;
	}
	e = field_error(key, keylen, reason);
	e->sent = palloc(sizeof(JsonbValue));
	*e->sent = *sent; /* points into the payload, which outlives the call */
	p->warnings = lappend(p->warnings, e);
}

static int
error_cmp(const ListCell *a, const ListCell *b)
{
	return strcmp(((FieldError *) lfirst(a))->key, ((FieldError *) lfirst(b))->key);
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A value's text without the whitespace around it, as every field is read. */
void
li_trim(const char **s, int *len)
{
	while (*len > 0 && is_space(**s))
		(*s)++, (*len)--;
	while (*len > 0 && is_space((*s)[*len - 1]))
		(*len)--;
}

/* VICIdial sends --A--name--B-- for a variable it could not expand. */
static bool
is_placeholder(const char *s, int len)
{
	if (len < 11 || strncmp(s, "--A--", 5) != 0 || strncmp(s + len - 5, "--B--", 5) != 0)
		return false;
	for (int i = 5; i < len - 5; i++)
		if (!isalnum((unsigned char) s[i]) && s[i] != '_')
			return false;
	return true;
}

static bool
is_absent(const char *s, int len)
{
	return len == 0 || is_placeholder(s, len) || (len == 10 && strncmp(s, "0000-00-00", 10) == 0) ||
		   (len == 19 && strncmp(s, "0000-00-00 00:00:00", 19) == 0);
}

/* Reads n digits as a number; -1 if any is not a digit. */
static int
digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++)
	{
		if (!isdigit((unsigned char) s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static bool
all_digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (!isdigit((unsigned char) s[i]))
			return false;
	return true;
}

static bool
valid_date(const char *s)
{
	int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);

	if (s[4] != '-' || s[7] != '-' || y < 1 || m < 1 || m > 12 || d < 1)
		return false;
	return d <= day_tab[isleap(y)][m - 1];
}

static bool
valid_email(const char *s, int len)
{
	const char *at = memchr(s, '@', len);
	const char *domain, *label;
	int labels = 0, label_len = 0;

	if (at == NULL || at == s || at - s > 64 || memchr(at + 1, '@', s + len - at - 1))
		return false;
	for (const char *c = s; c < at; c++)
		if ((unsigned char) *c <= ' ' || *c == '"' || *c == '(' || *c == ')' || *c == ',' ||
			*c == ';' || *c == '<' || *c == '>' || *c == '\\' || *c == '[' || *c == ']' ||
			(*c == '.' && (c == s || c + 1 == at || c[1] == '.')))
			return false;
	domain = at + 1;
	label = domain;
	for (const char *c = domain;; c++)
	{
		if (c == s + len || *c == '.')
		{
			if (label_len == 0 || label_len > 63 || *label == '-' || c[-1] == '-')
				return false;
			labels++;
			if (c == s + len)
				break;
			label = c + 1;
			label_len = 0;
		}
		else if (isalnum((unsigned char) *c) || *c == '-' || (unsigned char) *c >= 0x80)
			label_len++;
		else
			return false;
	}
	/* A top-level domain has two or more characters and is not all digits. */
	if (labels < 2 || label_len < 2)
		return false;
	for (const char *c = label; c < s + len; c++)
		if (!isdigit((unsigned char) *c))
			return true;
	return false;
}

#define NUL_REASON "must not contain a NUL byte"

/* Why a value of this kind is not acceptable, or NULL; s is NUL-terminated. */
static const char *
invalid_reason(const DialerField *f, const char *s, int len)
{
	if (memchr(s, '\0', len) != NULL)
		return NUL_REASON;
	/*
	 * The typed kinds' formats bound their length; their own message is clearer. A text
	 * has no more characters than bytes: only a long one is counted.
	 */
	if ((f->kind == FK_TEXT || f->kind == FK_IDENTITY || f->kind == FK_PHONE ||
		 f->kind == FK_EMAIL || f->kind == FK_PHONE_CODE) &&
		len > f->max_len && pg_mbstrlen_with_len(s, len) > f->max_len)
		return psprintf("must be at most %d characters", f->max_len);

	switch (f->kind)
	{
		case FK_TEXT:
		case FK_IDENTITY:
			return NULL;
		case FK_PHONE:
		{
			bool has_digit = false;

			for (int i = 0; i < len; i++)
			{
				if (isdigit((unsigned char) s[i]))
					has_digit = true;
				else if (!(s[i] == '+' && i == 0) && !strchr(" -.()/", s[i]))
					return "must be a phone number: digits, an optional leading +, "
						   "spaces and - . ( ) /";
			}
			return has_digit ? NULL : "must be a phone number with at least one digit";
		}
		case FK_PHONE_CODE:
		{
			const char *d = (*s == '+') ? s + 1 : s;
			int n = len - (d - s);

			return (n >= 1 && n <= 4 && all_digits(d, n))
					   ? NULL
					   : "must be a country calling code of 1 to 4 digits";
		}
		case FK_EMAIL:
			return valid_email(s, len)
					   ? NULL
					   : "must be a plausible e-mail address, like name@example.com";
		case FK_DATE:
			return (len == 10 && valid_date(s)) ? NULL : "must be a real date as YYYY-MM-DD";
		case FK_DATETIME:
			if (len == 19 && valid_date(s) && s[10] == ' ' && s[13] == ':' && s[16] == ':')
			{
				int h = digits(s + 11, 2), m = digits(s + 14, 2), sec = digits(s + 17, 2);

				if (h >= 0 && h <= 23 && m >= 0 && m <= 59 && sec >= 0 && sec <= 59)
					return NULL;
			}
			return "must be a real date and time as YYYY-MM-DD HH:MM:SS";
		case FK_INT:
		{
			int start = (*s == '-' || *s == '+') ? 1 : 0;

			if (len > start && all_digits(s + start, len - start))
			{
				errno = 0;
				(void) strtoll(s, NULL, 10);
				if (errno == 0)
					return NULL;
			}
			return "must be an integer";
		}
		case FK_IP:
		{
			unsigned char buf[sizeof(struct in6_addr)];

			if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
				return NULL;
			return "must be an IPv4 or IPv6 address";
		}
		case FK_OFFSET:
		{
			int i = (*s == '-' || *s == '+') ? 1 : 0;
			int int_digits = 0, frac_digits = 0;

			for (; i < len && isdigit((unsigned char) s[i]); i++)
				int_digits++;
			if (i < len && s[i] == '.')
				for (i++; i < len && isdigit((unsigned char) s[i]); i++)
					frac_digits++;
			if (i == len && int_digits >= 1 && int_digits <= 2 && frac_digits <= 2)
			{
				double v = strtod(s, NULL);

				if (v >= -12.0 && v <= 14.0)
					return NULL;
			}
			return "must be a number from -12 to 14";
		}
	}
	return NULL;
}

/*
 * Reads one known field's value as text: strings trimmed, numbers and booleans as their
 * text; absent values leave the field NULL.
 */
static void
read_field(Payload *p, FieldId f, const char *key, int keylen, JsonbValue *v)
{
	const char *s;
	int len;
	const char *reason;

	switch (v->type)
	{
		case jbvNull:
			return;
		case jbvString:
			s = v->val.string.val;
			len = v->val.string.len;
			li_trim(&s, &len);
			break;
		case jbvNumeric:
			s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
			len = strlen(s);
			break;
		case jbvBool:
			s = v->val.boolean ? "true" : "false";
			len = strlen(s);
			break;
		default:
			add_invalid(p, key, keylen, "must be a single value, not an object or array", v, true);
			return;
	}
	if (is_absent(s, len))
		return;
	s = pnstrdup(s, len);
	if ((reason = invalid_reason(&li_fields[f], s, len)) != NULL)
		add_invalid(p, key, keylen, reason, v, strcmp(reason, NUL_REASON) != 0);
	else
		p->values[f] = (char *) s;
}

static void
push_pair(JsonbParseState **state, JsonbValue *key, JsonbValue *value)
{
	if (*state == NULL)
		pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(state, WJB_KEY, key);
	pushJsonbValue(state, WJB_VALUE, value);
}

static Jsonb *
finish_object(JsonbParseState **state)
{
	if (*state == NULL)
		return NULL;
	return JsonbValueToJsonb(pushJsonbValue(state, WJB_END_OBJECT, NULL));
}

/* The object without its secret keys; *changed says whether any was there. */
Jsonb *
li_redact(Jsonb *jb, bool *changed)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it;
	JsonbValue k, v;
	JsonbIteratorToken tok;
	Jsonb *out;

	*changed = false;
	if (!JB_ROOT_IS_OBJECT(jb))
		return jb;
	it = JsonbIteratorInit(&jb->root);
	pushJsonbValue(&state, JsonbIteratorNext(&it, &k, true), NULL);
	while ((tok = JsonbIteratorNext(&it, &k, true)) == WJB_KEY)
	{
		JsonbIteratorNext(&it, &v, true);
		if (li_is_secret(k.val.string.val, k.val.string.len))
			*changed = true;
		else
			push_pair(&state, &k, &v);
	}
	out = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
	return *changed ? out : jb;
}

static bool
is_identity_key(const char *key)
{
	return strcmp(key, "user") == 0 || strcmp(key, "dialer_user_id") == 0 ||
		   strcmp(key, "agent_username") == 0;
}

static void
push_cstring(JsonbParseState **state, JsonbIteratorToken tok, const char *s)
{
	JsonbValue v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(state, tok, &v);
}

/*
 * "_invalid": {"<key>": {"value": <as sent>, "reason": "<why>"}, ...}, the values a call
 * under keep did not store, added to its extra (the last pair of a key wins in jsonb, so
 * this replaces an "_invalid" the client sent itself).
 */
static void
push_invalid(JsonbParseState **extra, List *warnings)
{
	ListCell *lc;

	if (*extra == NULL)
		pushJsonbValue(extra, WJB_BEGIN_OBJECT, NULL);
	push_cstring(extra, WJB_KEY, "_invalid");
	pushJsonbValue(extra, WJB_BEGIN_OBJECT, NULL);
	foreach (lc, warnings)
	{
		FieldError *w = lfirst(lc);

		push_cstring(extra, WJB_KEY, w->key);
		pushJsonbValue(extra, WJB_BEGIN_OBJECT, NULL);
		push_cstring(extra, WJB_KEY, "value");
		pushJsonbValue(extra, WJB_VALUE, w->sent);
		push_cstring(extra, WJB_KEY, "reason");
		push_cstring(extra, WJB_VALUE, w->reason);
		pushJsonbValue(extra, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(extra, WJB_END_OBJECT, NULL);
}

char *
li_build_full_name(const char *first, const char *middle, const char *last)
{
	const char *parts[3] = {first, middle, last};
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < 3; i++)
		if (parts[i] != NULL)
		{
			if (buf.len > 0)
				appendStringInfoChar(&buf, ' ');
			appendStringInfoString(&buf, parts[i]);
		}
	if (buf.len == 0)
	{
		pfree(buf.data);
		return NULL;
	}
	return buf.data;
}

void
li_read_payload(Jsonb *jb, Payload *p)
{
	JsonbParseState *extra = NULL;
	JsonbIterator *it;
	JsonbValue k, v;
	JsonbIteratorToken tok;
	bool seen[LI_NFIELDS] = {false};
	bool secret = false;
	struct
	{
		JsonbValue key;
		JsonbValue value;
	} alias[LI_NFIELDS];
	bool alias_sent[LI_NFIELDS] = {false};

	memset(p, 0, sizeof(Payload));
	p->logged = jb;
	if (!JB_ROOT_IS_OBJECT(jb))
	{
		p->not_object = true;
		return;
	}

	it = JsonbIteratorInit(&jb->root);
	(void) JsonbIteratorNext(&it, &k, true);
	while ((tok = JsonbIteratorNext(&it, &k, true)) == WJB_KEY)
	{
		const char *key = k.val.string.val;
		int keylen = k.val.string.len;
		bool is_alias;
		int f;

		(void) JsonbIteratorNext(&it, &v, true);
		if (li_is_secret(key, keylen))
			secret = true;
		else if ((f = li_field_lookup(key, keylen, &is_alias)) < 0)
			push_pair(&extra, &k, &v);
		else if (is_alias)
		{
			alias[f].key = k;
			alias[f].value = v;
			alias_sent[f] = true;
		}
		else
		{
			int nerrors = list_length(p->errors);

			read_field(p, f, key, keylen, &v);
			/* a value kept as invalid counts as absent: an alias may stand in */
			seen[f] = p->values[f] != NULL || list_length(p->errors) > nerrors;
		}
	}

	/* An alias stands in for an absent canonical key; otherwise it is kept in extra. */
	for (int f = 0; f < LI_NFIELDS; f++)
		if (alias_sent[f])
		{
			if (seen[f])
				push_pair(&extra, &alias[f].key, &alias[f].value);
			else
				read_field(p, f, alias[f].key.val.string.val, alias[f].key.val.string.len,
						   &alias[f].value);
		}

	p->logged = secret ? li_redact(jb, &secret) : jb;

	if (p->values[F_DIALER_USER_ID] == NULL && p->values[F_USER] == NULL)
	{
		bool identity_error = false;
		List *kept = NIL;
		ListCell *lc;

		/* keep never spares the identity: with none valid, its bad values fail the call */
		foreach (lc, p->warnings)
		{
			FieldError *w = lfirst(lc);

			if (is_identity_key(w->key))
				p->errors = lappend(p->errors, w);
			else
				kept = lappend(kept, w);
		}
		p->warnings = kept;
		foreach (lc, p->errors)
			if (is_identity_key(((FieldError *) lfirst(lc))->key))
				identity_error = true;
		if (!identity_error)
		{
			add_error(p, "user", 4, "is required when dialer_user_id is absent");
			p->identity_missing = true;
		}
	}
	list_sort(p->errors, error_cmp);
	if (p->warnings)
	{
		list_sort(p->warnings, error_cmp);
		push_invalid(&extra, p->warnings);
	}
	p->extra = finish_object(&extra);

	p->name_part_sent =
		p->values[F_FIRST_NAME] || p->values[F_MIDDLE_INITIAL] || p->values[F_LAST_NAME];
	p->full_name = p->values[F_FULL_NAME]
					   ? p->values[F_FULL_NAME]
					   : li_build_full_name(p->values[F_FIRST_NAME], p->values[F_MIDDLE_INITIAL],
											p->values[F_LAST_NAME]);
	p->phone = p->values[F_PHONE] ? p->values[F_PHONE] : p->values[F_PHONE_NUMBER];
}

/*
 * phone_e164 and phone_valid, made on first use: no validation depends on them, and an
 * update by lead id that sends the phone and phone_code the lead has keeps the stored ones
 * (store.c), so that call never parses its phone.
 */
void
li_parse_phone(Payload *p)
{
	if (p->phone_parsed)
		return;
	p->phone_e164 = li_phone_parse(p->phone, p->values[F_PHONE_CODE], &p->phone_valid);
	p->phone_parsed = true;
}
