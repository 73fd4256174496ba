/*
 * check.c: what the console reads from a logged payload with the intake's own reader:
 * check_payload(jsonb), the field reasons of its 400, and asked_agent(jsonb), its agent.
 */
#include "leadintake.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(leadintake_check_payload);
PG_FUNCTION_INFO_V1(leadintake_asked_agent);

/* asked_agent shows at most this many characters of a value as sent */
#define ASKED_AGENT_CHARS 200

/*
 * {"<key>": "<why>", ...}, the details of the 400 this payload would get; {} when it would
 * pass validation or is no JSON object (whose 400 names no field). The reasons are those of
 * leadintake.invalid_fields = reject whatever the setting: keep turns the same reasons into
 * warnings.
 */
Datum
leadintake_check_payload(PG_FUNCTION_ARGS)
{
	Jsonb *jb = PG_GETARG_JSONB_P(0);
	int saved = li_invalid_fields;
	Payload p;
	JsonbValue reasons;

	li_invalid_fields = LI_INVALID_REJECT;
	PG_TRY();
	{
		li_read_payload(jb, &p);
	}
	PG_FINALLY();
	{
		li_invalid_fields = saved;
	}
	PG_END_TRY();
	li_field_reasons(&reasons, p.errors);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(&reasons));
}

/*
 * The agent a payload asks for (leadintake.asked_agent, the console's): its dialer_user_id,
 * else its user or the user's alias, read as li_read_payload reads them, the resolver's order
 * (contract section 4). When none is usable (a placeholder the dialer left unexpanded, a
 * value too long), the first of them as sent, trimmed and cut to ASKED_AGENT_CHARS
 * characters, so that the console shows what came. NULL when the payload names none.
 */
static char *
asked_agent(Jsonb *jb)
{
	Payload p;
	char *sent[3] = {NULL, NULL, NULL}; /* dialer_user_id, user, the user's alias */
	JsonbIterator *it;
	JsonbValue k, v;

	li_read_payload(jb, &p);
	if (p.values[F_DIALER_USER_ID] || p.values[F_USER] || p.not_object)
		return p.values[F_DIALER_USER_ID] ? p.values[F_DIALER_USER_ID] : p.values[F_USER];
	it = JsonbIteratorInit(&jb->root);
	(void) JsonbIteratorNext(&it, &k, true);
	while (JsonbIteratorNext(&it, &k, true) == WJB_KEY)
	{
		bool is_alias;
		int f = li_field_lookup(k.val.string.val, k.val.string.len, &is_alias);
		const char *s;
		int len;
		int slot;

		(void) JsonbIteratorNext(&it, &v, true);
		if ((f != F_DIALER_USER_ID && f != F_USER) || (v.type != jbvString && v.type != jbvBinary))
			continue;
		if (v.type == jbvBinary) /* an object or array: its JSON text */
		{
			s = JsonbToCString(NULL, v.val.binary.data, v.val.binary.len);
			len = strlen(s);
		}
		else
		{
			s = v.val.string.val;
			len = v.val.string.len;
		}
		li_trim(&s, &len);
		if (len == 0)
			continue;
		slot = f == F_DIALER_USER_ID ? 0 : (is_alias ? 2 : 1);
		sent[slot] = pnstrdup(s, pg_mbcharcliplen(s, len, ASKED_AGENT_CHARS));
	}
	for (int i = 0; i < lengthof(sent); i++)
		if (sent[i])
			return sent[i];
	return NULL;
}

/* leadintake.asked_agent(payload): asked_agent's; NULL when the payload names none. */
Datum
leadintake_asked_agent(PG_FUNCTION_ARGS)
{
	char *agent = asked_agent(PG_GETARG_JSONB_P(0));

	if (agent == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(agent));
}
