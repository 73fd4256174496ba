/*
 * intake.c: the C core behind every entry: validate the payload, resolve the agent, store
 * the lead, and build the caller's answer. A client's mistake is an outcome, not an error.
 */
#include "leadintake.h"

#include "utils/memutils.h"

/*
 * The agent the stored lead is assigned to: on create the one just resolved; on update the
 * lead keeps its own, which is looked up only when it is another.
 */
static void
assigned_agent(LeadRow *lead, Agent *resolved, LeadAgent *out)
{
	int64 agent_id = DatumGetInt64(lead->values[LC_AGENT]);

	out->username = out->name = NULL;
	if (lead->nulls[LC_AGENT])
		return;
	if (agent_id == resolved->id)
	{
		out->username = resolved->username;
		out->name = resolved->display_name ? resolved->display_name : resolved->username;
		return;
	}
	li_agent_by_id(agent_id, out);
}

static char *
error_message(Payload *p)
{
	if (p->identity_missing && list_length(p->errors) == 1)
		return pstrdup("Missing required fields: dialer_user_id or user");
	return li_field_list("Invalid fields", p->errors);
}

/*
 * The C core behind every entry: validate, resolve the agent, upsert. A client's mistake
 * ends in in->status 400 or 404, not in an error; the response is built in outer.
 */
void
li_process(Jsonb *jb, Intake *in, MemoryContext outer)
{
	Payload p;
	Agent agent;
	char *error;
	bool created;
	LeadRow lead;
	LeadAgent lead_agent;
	MemoryContext old;

	li_read_payload(jb, &p);
	in->logged_payload = p.logged;
	if (p.not_object)
	{
		li_fail(in, 400, ERRCODE_INVALID_PARAMETER_VALUE, "Request body must be a JSON object",
				NIL);
		return;
	}
	if (p.errors)
	{
		li_fail(in, 400, ERRCODE_INVALID_PARAMETER_VALUE, error_message(&p), p.errors);
		return;
	}
	if (!li_resolve_agent(p.values[F_DIALER_USER_ID], p.values[F_USER], &agent, &error))
	{
		li_fail(in, 404, ERRCODE_NO_DATA_FOUND, error, NIL);
		return;
	}

	created = li_store_lead(&p, &agent, &lead);
	assigned_agent(&lead, &agent, &lead_agent);

	old = MemoryContextSwitchTo(outer);
	in->status = 201;
	in->created = created;
	in->response = li_success_response(&lead, created, &lead_agent, in->minimal ? &p : NULL,
									   p.warnings, &in->crm_lead_id);
	MemoryContextSwitchTo(old);
	in->agent_username = lead_agent.username;
	in->warnings = p.warnings;
}
