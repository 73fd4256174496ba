/*
 * phone.c: phone_e164 and phone_valid (contract section 3) through phonelib.cpp, the rule
 * of before as the fallback, and the setting leadintake.default_phone_code.
 */
#include "leadintake.h"
#include "phonelib.h"

#include <stdlib.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "miscadmin.h"
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

	/*
	 * Preloaded, the postmaster loads libphonenumber's metadata and compiles the patterns of
	 * the commonest shapes of number: every backend starts with them, instead of spending
	 * about 40 million instructions on its first phone.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		char out[LI_PHONELIB_OUTSIZE];
		int valid;

		(void) li_phonelib_parse("+44 7700 900123", 44, out, sizeof(out), &valid);
		(void) li_phonelib_parse("07700 900123", 44, out, sizeof(out), &valid);
	}
}

/* The rule of 1.4, for what libphonenumber cannot parse: digits as phone_parse read them. */
static char *
fallback(const char *digits, bool plus, const char *code)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoChar(&out, '+');
	if (plus)
		appendStringInfoString(&out, digits);
	else if (strncmp(digits, "00", 2) == 0)
		appendStringInfoString(&out, digits + 2);
	else
	{
		appendStringInfoString(&out, code);
		appendStringInfoString(&out, digits + (digits[0] == '0' ? 1 : 0));
	}
	return out.data;
}

/*
 * The last phone parsed and its outcome: an update parses again the phone its payload has
 * just parsed, and a parse is most of a hundred thousand instructions.
 */
static struct
{
	bool set;
	char phone[64];
	char code[8];
	char e164[LI_PHONELIB_OUTSIZE];
	bool valid;
} last;

/*
 * libphonenumber's parse for the region of the calling code, formatted as E.164; for what it
 * cannot parse, the rule of before: separators are dropped, a leading 00 becomes +, "(0)"
 * after an international prefix is the trunk zero written out and goes, a national trunk 0
 * becomes the country code, and bare national digits get + and the code. NULL when there is
 * no digit, or only a prefix ("0", "00"): no number to match on, or all such would merge.
 * *valid: libphonenumber judges it a valid number of its region (false for the fallback).
 */
char *
li_phone_parse(const char *phone, const char *phone_code, bool *valid)
{
	StringInfoData digits;
	bool plus = false;
	const char *code;
	char parsed[LI_PHONELIB_OUTSIZE];
	int lib_valid;
	char *result;

	*valid = false;
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
	if (!plus && (strcmp(digits.data, "00") == 0 || strcmp(digits.data, "0") == 0))
		return NULL;

	code = phone_code ? phone_code : li_default_phone_code;
	if (code == NULL || !valid_code(code))
		code = "44";
	if (*code == '+')
		code++;

	if (last.set && strcmp(last.phone, phone) == 0 && strcmp(last.code, code) == 0)
	{
		*valid = last.valid;
		return pstrdup(last.e164);
	}

	switch (li_phonelib_parse(phone, atoi(code), parsed, sizeof(parsed), &lib_valid))
	{
		case LI_PHONELIB_OK:
			*valid = lib_valid != 0;
			result = pstrdup(parsed);
			break;
		case LI_PHONELIB_UNPARSED:
			result = fallback(digits.data, plus, code);
			break;
		default:
			ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
							errmsg("libphonenumber failed on a phone number: %s", parsed)));
	}
	pfree(digits.data);

	last.set = false;
	if (strlen(phone) < sizeof(last.phone) && strlen(result) < sizeof(last.e164))
	{
		strcpy(last.phone, phone);
		strcpy(last.code, code); /* valid_code: at most 4 digits */
		strcpy(last.e164, result);
		last.valid = *valid;
		last.set = true;
	}
	return result;
}

char *
li_phone_e164(const char *phone, const char *phone_code)
{
	bool valid;

	return li_phone_parse(phone, phone_code, &valid);
}

/* A phone_code argument of the SQL functions: NULL, or 1 to 4 digits. */
static char *
code_arg(FunctionCallInfo fcinfo, int argno)
{
	char *code;

	if (PG_ARGISNULL(argno))
		return NULL;
	code = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	if (!valid_code(code))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("invalid phone_code \"%s\"", code),
						errdetail("A country calling code is 1 to 4 digits, such as 44 or 1.")));
	return code;
}

PG_FUNCTION_INFO_V1(leadintake_phone_e164);

/* leadintake.phone_e164(phone, phone_code): the normalisation of the intake, for SQL. */
Datum
leadintake_phone_e164(PG_FUNCTION_ARGS)
{
	char *code;
	char *result;
	bool valid;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	code = code_arg(fcinfo, 1);
	result = li_phone_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), code, &valid);
	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

PG_FUNCTION_INFO_V1(leadintake_phone_valid);

/* leadintake.phone_valid(phone, phone_code): the lead's phone_valid, for SQL; NULL without a phone. */
Datum
leadintake_phone_valid(PG_FUNCTION_ARGS)
{
	char *code;
	bool valid;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	code = code_arg(fcinfo, 1);
	(void) li_phone_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), code, &valid);
	PG_RETURN_BOOL(valid);
}
