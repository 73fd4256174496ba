/*
 * check.c: leadintake.check_payload(jsonb), the field reasons a 400 gives for a payload, as
 * the validator of payload.c finds them now; the console shows them for a logged request.
 */
#include "leadintake.h"

#include "fmgr.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(leadintake_check_payload);

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
