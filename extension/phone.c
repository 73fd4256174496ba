/*
 * phone.c: phone_e164, the phone number normalised for matching (contract section 3),
 * and the setting leadintake.default_phone_code it falls back on.
 */
#include "leadintake.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"

char *li_default_phone_code = NULL;

static bool
valid_code(const char *code)
{
	int n = 0;

	if (*code == '+')
		code++;
	for (; *code; code++, n++)
		if (!isdigit((unsigned char) *code))
			return false;
	return n >= 1 && n <= 4;
}

static bool
check_phone_code(char **newval, void **extra, GucSource source)
{
	if (*newval && valid_code(*newval))
		return true;
	GUC_check_errdetail("A country calling code is 1 to 4 digits, such as 44 or 1.");
	return false;
}

void
li_define_phone_guc(void)
{
	DefineCustomStringVariable(
		"leadintake.default_phone_code", "Country calling code for phone numbers sent without one.",
		"Used for phone_e164 when the payload has no phone_code.", &li_default_phone_code, "44",
		PGC_USERSET, 0, check_phone_code, NULL, NULL);
}

/*
 * Separators are dropped, a leading 00 becomes +, "(0)" after an international prefix is
 * the trunk zero written out and goes, a national trunk 0 becomes the country code, and
 * bare national digits get + and the code. Returns NULL when there are no digits.
 */
char *
li_phone_e164(const char *phone, const char *phone_code)
{
	StringInfoData digits;
	StringInfoData out;
	bool plus = false;
	const char *code;

	if (phone == NULL)
		return NULL;
	initStringInfo(&digits);
	for (const char *s = phone; *s; s++)
	{
		if (isdigit((unsigned char) *s))
			appendStringInfoChar(&digits, *s);
		else if (*s == '+' && digits.len == 0)
			plus = true;
		else if (s[0] == '(' && s[1] == '0' && s[2] == ')' &&
				 (plus || (digits.len >= 2 && strncmp(digits.data, "00", 2) == 0)))
			s += 2;
	}
	if (digits.len == 0)
		return NULL;

	/* Only a prefix ("00", a trunk "0"): no number to match on, or all such would merge. */
	if ((!plus && strcmp(digits.data, "00") == 0) || (!plus && strcmp(digits.data, "0") == 0))
		return NULL;

	initStringInfo(&out);
	appendStringInfoChar(&out, '+');
	if (plus)
		appendStringInfoString(&out, digits.data);
	else if (strncmp(digits.data, "00", 2) == 0)
		appendStringInfoString(&out, digits.data + 2);
	else
	{
		code = phone_code ? phone_code : li_default_phone_code;
		if (code == NULL || !valid_code(code))
			code = "44";
		if (*code == '+')
			code++;
		appendStringInfoString(&out, code);
		appendStringInfoString(&out, digits.data + (digits.data[0] == '0' ? 1 : 0));
	}
	pfree(digits.data);
	return out.data;
}

PG_FUNCTION_INFO_V1(leadintake_phone_e164);

/* leadintake.phone_e164(phone, phone_code): the same normalisation, for SQL. */
Datum
leadintake_phone_e164(PG_FUNCTION_ARGS)
{
	char *code = NULL;
	char *result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	if (!PG_ARGISNULL(1))
	{
		code = text_to_cstring(PG_GETARG_TEXT_PP(1));
		if (!valid_code(code))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid phone_code \"%s\"", code),
					 errdetail("A country calling code is 1 to 4 digits, such as 44 or 1.")));
	}
	result = li_phone_e164(text_to_cstring(PG_GETARG_TEXT_PP(0)), code);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}
