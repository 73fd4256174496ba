/*
 * phonelib.cpp: the extension's one C++ file, libphonenumber behind phonelib.h's C interface
 * (as PostGIS wraps GEOS). It includes nothing of PostgreSQL and lets no exception out.
 */
extern "C"
{
#include "phonelib.h"
}

#include <cstring>
#include <exception>
#include <string>

#include <phonenumbers/logger.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

static void
copy_out(const std::string &s, char *out, size_t outsize)
{
	size_t n = s.size() < outsize - 1 ? s.size() : outsize - 1;

	memcpy(out, s.data(), n);
	out[n] = '\0';
}

LiPhonelibStatus
li_phonelib_parse(const char *phone, int calling_code, char *out, size_t outsize, int *valid)
{
	*valid = 0;
	if (outsize == 0)
		return LI_PHONELIB_FAILED;
	out[0] = '\0';
	try
	{
		/* a singleton made on first use: the metadata of every region, once per backend */
		static PhoneNumberUtil *const util = []
		{
			PhoneNumberUtil *u = PhoneNumberUtil::GetInstance();

			/* it would write to the server's stderr; it only logs what Parse returns */
			u->SetLogger(new i18n::phonenumbers::NullLogger());
			return u;
		}();
		std::string region;
		PhoneNumber number;
		std::string e164;

		/* "ZZ" for a code no region has: then only a number with its own + code parses */
		util->GetRegionCodeForCountryCode(calling_code, &region);
		if (util->Parse(phone, region, &number) != PhoneNumberUtil::NO_PARSING_ERROR)
			return LI_PHONELIB_UNPARSED;
		util->Format(number, PhoneNumberUtil::E164, &e164);
		if (e164.size() < 2 || e164.size() >= outsize)
			return LI_PHONELIB_UNPARSED;
		copy_out(e164, out, outsize);
		*valid = util->IsValidNumber(number) ? 1 : 0;
		return LI_PHONELIB_OK;
	}
	catch (const std::exception &e)
	{
		copy_out(e.what(), out, outsize);
	}
	catch (...)
	{
		copy_out("unknown C++ exception", out, outsize);
	}
	*valid = 0;
	return LI_PHONELIB_FAILED;
}
