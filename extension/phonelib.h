/*
 * phonelib.h: the C interface of phonelib.cpp, Google's libphonenumber for phone.c. Plain C
 * types only; no C++ exception crosses it: every call returns a status.
 */
#ifndef LEADINTAKE_PHONELIB_H
#define LEADINTAKE_PHONELIB_H

#include <stddef.h>

/* (phonelib.cpp includes this file inside extern "C") */

typedef enum LiPhonelibStatus
{
	LI_PHONELIB_OK = 0,       /* parsed: out holds the E.164 text, *valid is set */
	LI_PHONELIB_UNPARSED = 1, /* libphonenumber cannot parse it: the caller's fallback */
	LI_PHONELIB_FAILED = 2    /* the library failed (out of memory...): out holds why */
} LiPhonelibStatus;

/* Room for any E.164 number libphonenumber formats ("+", 3 + 17 digits) or a message. */
#define LI_PHONELIB_OUTSIZE 128

/*
 * Parse phone for the region of calling_code (44 -> GB, 1 -> US, 39 -> IT; an unknown code
 * parses only numbers written with their own code) and write it as E.164 into out, of
 * outsize bytes. *valid: whether libphonenumber judges it a valid number of its region.
 */
extern LiPhonelibStatus li_phonelib_parse(const char *phone, int calling_code, char *out,
										  size_t outsize, int *valid);

#endif /* LEADINTAKE_PHONELIB_H */
