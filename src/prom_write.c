/* Escaping and number formatting for our own Prometheus text exposition (see prom_write.h). */
#include "prom_write.h"
#include "utf8.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "prom_text.h"

static void put(struct rt_buf *b, const char *p, size_t n)
{
    /* No cap for our own output (limit = SIZE_MAX), so this cannot fail. */
    (void)rt_buf_append(b, p, n, (size_t)-1);
}

static void escape(struct rt_buf *b, struct rt_str v, bool quote)
{
    const unsigned char *s = (const unsigned char *)v.ptr;
    size_t i = 0, run = 0; /* [run, i) is a stretch copied as is */
    while (i < v.len) {
        const char *rep = NULL;
        size_t skip = 1;
        unsigned char c = s[i];
        if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (c == '"' && quote)
            rep = "\\\"";
        else if ((c < 0x20 && c != '\t') || c == 0x7f)
            rep = "\xef\xbf\xbd"; /* other control bytes: the parser refuses them */
        else if (c >= 0x80 && (skip = rt_utf8_seq(s + i, v.len - i)) == 0)
            rep = "\xef\xbf\xbd", skip = 1;
        if (!rep) {
            i += skip;
            continue;
        }
        put(b, v.ptr + run, i - run);
        put(b, rep, strlen(rep));
        i += skip;
        run = i;
    }
    put(b, v.ptr + run, i - run);
}

void rt_prom_write_label_value(struct rt_buf *b, struct rt_str v)
{
    escape(b, v, true);
}

void rt_prom_write_help(struct rt_buf *b, struct rt_str v)
{
    escape(b, v, false);
}

void rt_prom_write_double(struct rt_buf *b, double v)
{
    if (isnan(v)) {
        put(b, "NaN", 3);
        return;
    }
    if (isinf(v)) {
        put(b, v > 0 ? "+Inf" : "-Inf", 4);
        return;
    }
    /* Any decimal of at most 15 significant digits survives a trip through a double (DBL_DIG),
     * so %.15g is already the shortest when some form that short reads back; otherwise 16,
     * and 17 always does. Subnormals have fewer digits of precision, so they start from 1.
     * uselocale() is per thread, so this is safe with other threads. */
    char tmp[40];
    locale_t old = uselocale(rt_prom_c_locale());
    int n = 0;
    int first = (v != 0 && fabs(v) < DBL_MIN) ? 1 : 15;
    for (int prec = first; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod_l(tmp, NULL, rt_prom_c_locale()) == v)
            break;
    }
    uselocale(old);
    put(b, tmp, (size_t)n);
}
