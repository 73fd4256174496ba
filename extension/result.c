/*
 * result.c: what a caller gets back (contract section 6): the success body with the lead,
 * the error body, the SQL error with its SQLSTATE, and the dashboard query string.
 */
#include "leadintake.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

/* A JSON string, or null for NULL; value is kept by pointer until the Jsonb is built. */
static void
set_string(JsonbValue *v, const char *value, int len)
{
	if (value == NULL)
	{
		v->type = jbvNull;
		return;
	}
	v->type = jbvString;
	v->val.string.val = (char *) value;
	v->val.string.len = len;
}

static void
set_cstring(JsonbValue *v, const char *value)
{
	set_string(v, value, value ? strlen(value) : 0);
}

static void
put_cstring(JsonbParseState **st, const char *key, const char *value)
{
	JsonbValue k;
	JsonbValue v;

	set_cstring(&k, key);
	pushJsonbValue(st, WJB_KEY, &k);
	set_cstring(&v, value);
	pushJsonbValue(st, WJB_VALUE, &v);
}

/* value in width digits, zero-padded. */
static char *
put_digits(char *p, int value, int width)
{
	for (int i = width - 1; i >= 0; i--, value /= 10)
		p[i] = '0' + value % 10;
	return p + width;
}

/*
 * "YYYY-MM-DD", then " HH:MM:SS" or "THH:MM:SSZ" (time_sep ' ' or 'T', or 0 for the date
 * alone). Years outside 1..9999 take printf's form, as they always did.
 */
static char *
format_tm(const struct pg_tm *tm, char time_sep)
{
	char *buf, *p;

	if ((tm->tm_year < 1 || tm->tm_year > 9999) && time_sep == 0)
		return psprintf("%04d-%02d-%02d", tm->tm_year, tm->tm_mon, tm->tm_mday);
	if (tm->tm_year < 1 || tm->tm_year > 9999)
		return psprintf("%04d-%02d-%02d%c%02d:%02d:%02d%s", tm->tm_year, tm->tm_mon, tm->tm_mday,
						time_sep, tm->tm_hour, tm->tm_min, tm->tm_sec, time_sep == 'T' ? "Z" : "");
	p = buf = palloc(21);
	p = put_digits(p, tm->tm_year, 4);
	*p++ = '-';
	p = put_digits(p, tm->tm_mon, 2);
	*p++ = '-';
	p = put_digits(p, tm->tm_mday, 2);
	if (time_sep != 0)
	{
		*p++ = time_sep;
		p = put_digits(p, tm->tm_hour, 2);
		*p++ = ':';
		p = put_digits(p, tm->tm_min, 2);
		*p++ = ':';
		p = put_digits(p, tm->tm_sec, 2);
		if (time_sep == 'T')
			*p++ = 'Z';
	}
	*p = '\0';
	return buf;
}

/*
 * A column of the returned lead as the contract shows it: a JSON string in the field's
 * fixed format (dates ISO whatever DateStyle says), or null.
 */
static void
set_column(JsonbValue *v, Datum d, bool isnull, FieldKind kind)
{
	struct pg_tm tm;
	fsec_t fsec;
	text *t;

	if (isnull)
	{
		set_string(v, NULL, 0);
		return;
	}
	switch (kind)
	{
		case FK_DATE:
			/* infinity has no calendar form; its own output is the right text */
			if (DATE_NOT_FINITE(DatumGetDateADT(d)))
			{
				set_cstring(v, DatumGetCString(DirectFunctionCall1(date_out, d)));
				return;
			}
			j2date(DatumGetDateADT(d) + POSTGRES_EPOCH_JDATE, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
			set_cstring(v, format_tm(&tm, 0));
			return;
		case FK_DATETIME:
			if (TIMESTAMP_NOT_FINITE(DatumGetTimestamp(d)) ||
				timestamp2tm(DatumGetTimestamp(d), NULL, &tm, &fsec, NULL, NULL) != 0)
			{
				set_cstring(v, DatumGetCString(DirectFunctionCall1(timestamp_out, d)));
				return;
			}
			set_cstring(v, format_tm(&tm, ' '));
			return;
		case FK_INT:
			set_cstring(v, psprintf(INT64_FORMAT, DatumGetInt64(d)));
			return;
		case FK_OFFSET:
			set_cstring(v, DatumGetCString(DirectFunctionCall1(numeric_out, d)));
			return;
		case FK_IP:
			d = DirectFunctionCall1(network_host, d);
			break;
		default:
			break;
	}
	t = DatumGetTextPP(d);
	set_string(v, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* created_at and updated_at: ISO 8601 in UTC with Z, whole seconds. */
static void
set_utc(JsonbValue *v, Datum d, bool isnull)
{
	struct pg_tm tm;
	fsec_t fsec;

	if (isnull || TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(d)) ||
		timestamp2tm(DatumGetTimestampTz(d), NULL, &tm, &fsec, NULL, NULL) != 0)
		set_string(v, NULL, 0);
	else
		set_cstring(v, format_tm(&tm, 'T'));
}

/* A stored jsonb as a value of the object being built (which holds no binary containers). */
static void
set_jsonb(JsonbValue *v, Jsonb *value)
{
	JsonbParseState *st = NULL;
	JsonbIterator *it = JsonbIteratorInit(&value->root);
	JsonbIteratorToken tok;
	JsonbValue item;
	JsonbValue *res = NULL;

	while ((tok = JsonbIteratorNext(&it, &item, false)) != WJB_DONE)
		res = pushJsonbValue(&st, tok, tok < WJB_BEGIN_ARRAY ? &item : NULL);
	/* a raw scalar comes back as a one-element array */
	if (res->type == jbvArray && res->val.array.rawScalar)
		res = &res->val.array.elems[0];
	*v = *res;
}

/* What a key of the returned lead shows: where it comes from and how it is written. */
typedef enum LeadKeyKind
{
	LK_ID,
	LK_COLUMN,
	LK_EXTRA,
	LK_UTC,
	LK_BOOL,
	LK_AGENT_USERNAME,
	LK_AGENT_NAME
} LeadKeyKind;

typedef struct LeadKey
{
	const char *key;
	LeadKeyKind what;
	int col; /* in li_lead_columns() */
	FieldKind kind;
	int field; /* the dialer field it echoes (FieldId), or -1 */
} LeadKey;

static LeadKey *lead_keys;
static int nlead_keys;

/* jsonb's own order of object keys: shorter first, then bytewise. */
static int
jsonb_key_order(const void *a, const void *b)
{
	const char *ka = ((const LeadKey *) a)->key, *kb = ((const LeadKey *) b)->key;
	size_t la = strlen(ka), lb = strlen(kb);

	if (la != lb)
		return la < lb ? -1 : 1;
	return memcmp(ka, kb, la);
}

static void
add_key(const char *key, LeadKeyKind what, int col, FieldKind kind, int field)
{
	lead_keys[nlead_keys++] = (LeadKey){key, what, col, kind, field};
}

/*
 * The lead's keys (li_lead_columns(), the agent's column as two keys), once, in the order
 * jsonb stores them, so that the object is built with its pairs already sorted. Two keys
 * the same would make an invalid jsonb: refused here, once.
 */
static void
prepare_lead_keys(void)
{
	int ncols;
	const LeadColumn *cols = li_lead_columns(&ncols);
	static const LeadKeyKind shown_as[] = {[LS_ID] = LK_ID,
										   [LS_VALUE] = LK_COLUMN,
										   [LS_EXTRA] = LK_EXTRA,
										   [LS_UTC] = LK_UTC,
										   [LS_BOOL] = LK_BOOL};

	lead_keys = MemoryContextAlloc(TopMemoryContext, (ncols + 1) * sizeof(LeadKey));
	for (int col = 0; col < ncols; col++)
	{
		const LeadColumn *c = &cols[col];

		if (c->show == LS_AGENT)
		{
			add_key("assigned_agent_username", LK_AGENT_USERNAME, col, FK_TEXT, -1);
			add_key("assigned_agent_name", LK_AGENT_NAME, col, FK_TEXT, -1);
		}
		else
			add_key(c->key, shown_as[c->show], col, c->kind, c->field);
	}
	qsort(lead_keys, nlead_keys, sizeof(LeadKey), jsonb_key_order);
	for (int i = 1; i < nlead_keys; i++)
		if (jsonb_key_order(&lead_keys[i - 1], &lead_keys[i]) == 0)
			elog(ERROR, "response key \"%s\" appears twice", lead_keys[i].key);
}

/* The next pair of obj (its pairs allocated, filled in jsonb's key order); its value. */
static JsonbValue *
add_pair(JsonbValue *obj, const char *key)
{
	JsonbPair *pair = &obj->val.object.pairs[obj->val.object.nPairs];

	set_cstring(&pair->key, key);
	pair->order = obj->val.object.nPairs++;
	return &pair->value;
}

static void
init_object(JsonbValue *obj, int npairs)
{
	obj->type = jbvObject;
	obj->val.object.nPairs = 0;
	obj->val.object.pairs = palloc(npairs * sizeof(JsonbPair));
}

/*
 * Whether the minimal lead (contract section 7: a key from the URL, which every agent's
 * browser sees, must not read a lead's stored data) shows key k for the request sent: id,
 * status, the agent's username, and the fields the request itself sent, as this request
 * stored them. Not the stored dialer_lead_id of a lead found by phone that kept its own,
 * nor phone_e164 (it may be made with a stored phone_code), extra (merged with the stored
 * one), the agent's name or the timestamps.
 */
static bool
minimal_shows(const LeadKey *k, const Payload *sent, LeadRow *lead)
{
	if (k->what == LK_ID || k->what == LK_AGENT_USERNAME || strcmp(k->key, "status") == 0)
		return true;
	if (k->what != LK_COLUMN || k->field < 0)
		return false;
	switch (k->field)
	{
		case F_FULL_NAME:
			return sent->full_name != NULL;
		case F_PHONE:
			return sent->phone != NULL;
		case F_DIALER_LEAD_ID:
			return sent->values[F_DIALER_LEAD_ID] != NULL && !lead->nulls[k->col] &&
				   strcmp(TextDatumGetCString(lead->values[k->col]),
						  sent->values[F_DIALER_LEAD_ID]) == 0;
		default:
			return sent->values[k->field] != NULL;
	}
}

/*
 * {"<key>": "<why>", ...}: the fields of a 400's details, or the invalid values a call kept
 * (leadintake.invalid_fields = keep). pushJsonbValue sorts the pairs into jsonb's order;
 * they are the request's own keys, so the minimal body shows them too.
 */
void
li_field_reasons(JsonbValue *v, List *fields)
{
	JsonbParseState *st = NULL;
	ListCell *lc;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	foreach (lc, fields)
		put_cstring(&st, ((FieldError *) lfirst(lc))->key, ((FieldError *) lfirst(lc))->reason);
	*v = *pushJsonbValue(&st, WJB_END_OBJECT, NULL);
}

/*
 * The success body: {"success", "created", "message", "lead": {...}} where the lead is the
 * row a write returned, and "warnings" when the call kept invalid values; built as a
 * JsonbValue tree whose pairs are in jsonb's order. With minimal_for (the request's
 * payload), the lead shows only what minimal_shows() allows.
 */
Jsonb *
li_success_response(LeadRow *lead, bool created, LeadAgent *agent, const Payload *minimal_for,
					List *warnings, int64 *crm_lead_id)
{
	JsonbValue body;
	JsonbValue *lead_obj;
	JsonbValue *v;

	if (lead_keys == NULL)
		prepare_lead_keys();
	*crm_lead_id = DatumGetInt64(lead->values[LC_ID]);

	/* jsonb's order: "lead" (4 bytes), then "created" < "message" < "success" (7), then
	 * "warnings" (8) */
	init_object(&body, warnings ? 5 : 4);
	lead_obj = add_pair(&body, "lead");
	init_object(lead_obj, nlead_keys);
	v = add_pair(&body, "created");
	v->type = jbvBool;
	v->val.boolean = created;
	set_cstring(add_pair(&body, "message"),
				created ? "Lead created successfully" : "Lead updated successfully");
	v = add_pair(&body, "success");
	v->type = jbvBool;
	v->val.boolean = true;
	if (warnings)
		li_field_reasons(add_pair(&body, "warnings"), warnings);

	for (int i = 0; i < nlead_keys; i++)
	{
		const LeadKey *k = &lead_keys[i];

		if (minimal_for && !minimal_shows(k, minimal_for, lead))
			continue;
		v = add_pair(lead_obj, k->key);
		/* on update the stored name may hold stored parts: the one built from the request's */
		if (minimal_for && k->field == F_FULL_NAME)
		{
			set_cstring(v, minimal_for->full_name);
			continue;
		}
		switch (k->what)
		{
			case LK_ID:
				v->type = jbvNumeric;
				v->val.numeric = int64_to_numeric(*crm_lead_id);
				break;
			case LK_COLUMN:
				set_column(v, lead->values[k->col], lead->nulls[k->col], k->kind);
				break;
			case LK_EXTRA:
				set_jsonb(v, DatumGetJsonbP(lead->values[k->col]));
				break;
			case LK_UTC:
				set_utc(v, lead->values[k->col], lead->nulls[k->col]);
				break;
			case LK_BOOL:
				if (lead->nulls[k->col])
					v->type = jbvNull;
				else
				{
					v->type = jbvBool;
					v->val.boolean = DatumGetBool(lead->values[k->col]);
				}
				break;
			case LK_AGENT_USERNAME:
				set_cstring(v, agent->username);
				break;
			case LK_AGENT_NAME:
				set_cstring(v, agent->name);
				break;
		}
	}
	return JsonbValueToJsonb(&body);
}

/* "<prefix>: key, key, ..." */
char *
li_field_list(const char *prefix, List *fields)
{
	StringInfoData buf;
	ListCell *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s: ", prefix);
	foreach (lc, fields)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? ", " : "",
						 ((FieldError *) lfirst(lc))->key);
	return buf.data;
}

void
li_fail(Intake *in, int status, int sqlstate, char *error, List *details)
{
	in->status = status;
	in->sqlstate = sqlstate;
	in->error = error;
	in->details = details;
}

/* {"error": "...", "details": {"field": "reason"}}, built in outer. */
void
li_error_response(Intake *in, MemoryContext outer)
{
	MemoryContext old = MemoryContextSwitchTo(outer);
	JsonbParseState *st = NULL;
	ListCell *lc;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	put_cstring(&st, "error", in->error);
	if (in->details)
	{
		JsonbValue k;

		set_cstring(&k, "details");
		pushJsonbValue(&st, WJB_KEY, &k);
		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		foreach (lc, in->details)
			put_cstring(&st, ((FieldError *) lfirst(lc))->key, ((FieldError *) lfirst(lc))->reason);
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	in->response = JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
	MemoryContextSwitchTo(old);
}

/*
 * The failure as a PostgreSQL error: the same sentence, lower-cased first as the message
 * style asks, with one errdetail sentence per bad field.
 */
void
li_raise(Intake *in)
{
	char *msg = pstrdup(in->error);
	StringInfoData detail;
	ListCell *lc;

	msg[0] = pg_ascii_tolower((unsigned char) msg[0]);
	initStringInfo(&detail);
	foreach (lc, in->details)
		appendStringInfo(&detail, "%sField \"%s\" %s.", foreach_current_index(lc) ? " " : "",
						 ((FieldError *) lfirst(lc))->key, ((FieldError *) lfirst(lc))->reason);
	ereport(ERROR, (errcode(in->sqlstate), errmsg("%s", msg),
					in->details ? errdetail("%s", detail.data) : 0));
}

static void
append_encoded(StringInfo buf, const char *name, const char *value, int len)
{
	static const char hex[] = "0123456789ABCDEF";

	appendStringInfo(buf, "&%s=", name);
	for (int i = 0; i < len; i++)
	{
		unsigned char c = value[i];

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
			appendStringInfoChar(buf, c);
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, hex[c >> 4]);
			appendStringInfoChar(buf, hex[c & 15]);
		}
	}
}

/*
 * from_dialer=true&lead_id=..&full_name=..&phone=..&email=..&notes=.., URL-encoded. notes is
 * the lead's notes, else its comments: VICIdial sends comments (contract section 7).
 */
char *
li_dashboard_query(JsonbContainer *lead)
{
	static const char *const keys[] = {"full_name", "phone", "email", "notes"};
	StringInfoData buf;
	JsonbValue *v;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "from_dialer=true");
	v = getKeyJsonValueFromContainer(lead, "id", 2, NULL);
	appendStringInfo(
		&buf, "&lead_id=%s",
		DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric))));
	for (int i = 0; i < lengthof(keys); i++)
	{
		v = getKeyJsonValueFromContainer(lead, keys[i], strlen(keys[i]), NULL);
		if (strcmp(keys[i], "notes") == 0 && (v == NULL || v->type != jbvString))
			v = getKeyJsonValueFromContainer(lead, "comments", 8, NULL);
		if (v && v->type == jbvString)
			append_encoded(&buf, keys[i], v->val.string.val, v->val.string.len);
		else
			append_encoded(&buf, keys[i], "", 0);
	}
	return buf.data;
}
