/*
 * fuzz_phone.c: li_phone_parse (extension/phone.c, through phonelib.cpp into libphonenumber,
 * else the fallback rule), the phone normalisation for matching and its validity, which
 * leadintake.phone_e164(text, text) and phone_valid(text, text) expose to any SQL caller.
 *
 * Input: the phone_code, a newline, the phone (no newline: no phone_code, the setting's 44).
 * Checked besides the sanitizers: NULL exactly when the phone has no digit (or only a
 * prefix); otherwise "+" and digits only, no more digits than the phone's (letters and
 * non-ASCII bytes count: libphonenumber reads letters as a keypad does, and Unicode digits)
 * and a country code; valid only with a phone_e164; for a number libphonenumber judges
 * valid, normalising the result again gives the result, valid again.
 */
#include "leadintake.h"
#include "pgfake.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#undef fprintf

#include "fuzzfail.h"

#define FAIL(...) fuzz_fail("fuzz_phone", __VA_ARGS__)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
valid_code(const char *c)
{
	size_t n;

	if (*c == '+')
		c++;
	n = strlen(c);
	return n >= 1 && n <= 4 && strspn(c, "0123456789") == n;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_fail_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	char *nl;
	const char *code = NULL;
	const char *phone = buf;
	char *e164;
	bool valid;
	size_t ndigits = 0;
	size_t nother = 0; /* libphonenumber reads them too: letters, non-ASCII bytes, "(0)" */

	memcpy(buf, data, size);
	buf[size] = '\0';
	nl = strchr(buf, '\n');
	if (nl)
	{
		*nl = '\0';
		code = buf;
		phone = nl + 1;
		/* the SQL function refuses a bad code; the payload's validation does too */
		if (!valid_code(code))
			code = NULL;
	}
	li_default_phone_code = "44";
	/* the digits that count (README "Phones", step 2: a "(0)" after + or 00 is dropped) */
	bool plus = false;
	bool zz = false;

	{
		for (const char *s = phone; *s; s++)
			if (*s >= '0' && *s <= '9')
			{
				zz = ndigits == 0 ? *s == '0' : (ndigits == 1 ? zz && *s == '0' : zz);
				ndigits++;
			}
			else if (*s == '+' && ndigits == 0)
				plus = true;
			else if (s[0] == '(' && s[1] == '0' && s[2] == ')' && (plus || (ndigits >= 2 && zz)))
			{
				s += 2;
				nother++;
			}
			else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s & 0x80))
				nother++;
	}

	e164 = li_phone_parse(phone, code, &valid);
	if (valid && e164 == NULL)
		FAIL("\"%s\": valid without a phone_e164", phone);
	/* no digits, or only a prefix ("0", "00" without +): no number to match on */
	if ((e164 == NULL) != (ndigits == 0 || (!plus && ndigits <= 2 && zz)))
		FAIL("\"%s\" has %zu digits but phone_e164 is %s", phone, ndigits, e164 ? e164 : "NULL");
	if (e164)
	{
		size_t len = strlen(e164);
		char *again;

		if (e164[0] != '+' || strspn(e164 + 1, "0123456789") != len - 1)
			FAIL("phone_e164(\"%s\") = \"%s\": not + and digits", phone, e164);
		if (fuzz_strict())
		{
			/* the national number: the digits after a 00 or a trunk 0 (after + unknown) */
			char digits[4096];
			size_t nd = 0;

			for (const char *s = phone; *s && nd + 1 < sizeof(digits); s++)
				if (*s >= '0' && *s <= '9')
					digits[nd++] = *s;
				else if (*s == '+' && nd == 0)
					plus = true;
			digits[nd] = '\0';
			if (len < 2 || (!plus && (strcmp(digits, "0") == 0 || strcmp(digits, "00") == 0)))
				FAIL("phone_e164(\"%s\") = \"%s\": a phone without a national number must have "
					 "no phone_e164 (NULL), or it matches every other such phone",
					 phone, e164);
		}
		/* at most the country code (4 digits) more than the phone's digits */
		if (len - 1 > ndigits + nother + 4)
			FAIL("phone_e164(\"%s\") = \"%s\": digits from nowhere", phone, e164);
		/*
		 * Stable for a valid number only: libphonenumber is not for one it judges invalid
		 * ("00 97700 9090044 7700 0013" -> "+9770909004477000013" -> "+977909004477000013":
		 * a trunk 0 kept after 00, dropped after +), nor is the fallback's output of text it
		 * cannot parse ("+44 (0)", bytes not UTF-8, "00 900123": "+4400900123", then read as
		 * "+440900123").
		 */
		if (valid)
		{
			bool valid_again;

			again = li_phone_parse(e164, code, &valid_again);
			if (again == NULL || strcmp(again, e164) != 0)
				FAIL("phone_e164 is not stable: \"%s\" -> \"%s\" -> \"%s\"", phone, e164,
					 again ? again : "NULL");
			if (valid_again != valid)
				FAIL("phone_valid of \"%s\" is %d, of its phone_e164 \"%s\" %d", phone, valid, e164,
					 valid_again);
		}
	}
	/* the default code when none is sent, and a code with its + */
	if (code == NULL && e164)
	{
		char *with44 = li_phone_e164(phone, "+44");

		if (strcmp(with44, e164) != 0)
			FAIL("phone_code \"+44\" and the default 44 differ for \"%s\"", phone);
	}
	free(buf);
	pgfake_reset();
	return 0;
}
