/*
 * secrets.h: the dialer's secret keys of contract section 3 (api_key, dialer_api_key,
 * pass, orig_pass, phone_pass; any case), for the harnesses' checks (written from the
 * contract, not from the code under test).
 */
#ifndef FUZZ_SECRETS_H
#define FUZZ_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

static inline bool
fuzz_is_secret(const char *key, size_t len)
{
	static const char *const secrets[] = {
		"api_key", "dialer_api_key", "pass", "orig_pass", "phone_pass",
	};

	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (len == strlen(secrets[i]) && strncasecmp(key, secrets[i], len) == 0)
			return true;
	return false;
}

#endif
