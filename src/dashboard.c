/* The fullscreen terminal dashboard (ncursesw): samples the fleet's counters on a timer, draws
 * the server table, a summary and recent log events, and reacts to keys and terminal resizes.
 *
 * Everything here runs on the control loop except on_log (the log tap), which may run on any
 * thread and only copies the message into <ev> under <ev_mu>. The fleet is read through
 * rt_fleet_acquire() views and relaxed atomic loads: the dashboard never takes a lock a worker
 * waits for (the health-stats lock is per backend and held only for a copy). */
#include "dashboard.h"

#include <curses.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include "alloc.h"
#include "fleet.h"
#include "log.h"
#include "router.h"

#define EVENTS    64  /* recent log lines kept */
#define EVENT_LEN 240 /* bytes kept of each */
#define LINE_MAX_CELLS 1024 /* widest line drawn; wider terminals get blank space */

enum { C_GREEN = 1, C_YELLOW, C_RED, C_CYAN, C_DIM };

struct event {
    time_t t;
    enum rt_log_level level;
    char msg[EVENT_LEN];
};

/* What the last sample saw of one backend, to turn totals into rates. */
struct sample {
    uint64_t id;
    uint64_t done;  /* completed + failed at the sample */
    double rps;     /* over the interval that ended at the sample */
};

struct rt_dashboard {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_signal_t winch;
    uv_poll_t keys;
    bool keys_on;          /* <keys> initialised (stdin can be polled) */
    int open_handles;      /* freed when the last close callback ran */
    bool stopped;
    SCREEN *scr;
    int stdin_flags;       /* fcntl flags of fd 0 before libuv made it non-blocking */
    bool utf8;             /* the locale can show ● ✗ … █ */
    bool color;
    bool quitting;         /* q was pressed */
    int idle_reads;        /* readable-but-nothing-read callbacks in a row (stdin at EOF) */

    char *listen;          /* owned */
    double refresh_s;
    uint64_t start_ms;
    uint64_t sample_ms;    /* monotonic ms of the last sample */
    struct sample *samples; /* owned, one per backend of the last sample */
    size_t nsamples;

    size_t (*queued)(void *arg);
    void (*on_quit)(void *arg);
    void *arg;

    pthread_mutex_t ev_mu; /* guards ev and ev_count (the log tap writes from any thread) */
    struct event ev[EVENTS];
    uint64_t ev_count;     /* events ever pushed; the newest is ev[(ev_count - 1) % EVENTS] */
};

/* ---- drawing helpers ---- */

static int attr_color(const struct rt_dashboard *d, int pair)
{
    return d->color ? COLOR_PAIR(pair) : 0;
}

/* Draws <s> (UTF-8) at y, x in at most <w> cells, clipped at the right edge; control bytes show
 * as spaces and undecodable bytes as '?'. Returns the cells drawn. */
static int put(const struct rt_dashboard *d, int y, int x, int w, int attr, const char *s)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    if (y < 0 || y >= rows || x >= cols || w <= 0)
        return 0;
    if (w > cols - x)
        w = cols - x;
    wchar_t out[LINE_MAX_CELLS];
    int n = 0, cells = 0;
    mbstate_t st;
    memset(&st, 0, sizeof st);
    size_t len = strlen(s);
    while (len > 0 && n < LINE_MAX_CELLS) {
        wchar_t wc = L'?';
        size_t k = 1;
        unsigned char c = (unsigned char)*s;
        if (c < 0x80) {
            wc = (c < 0x20 || c == 0x7f) ? L' ' : (wchar_t)c;
        } else if (d->utf8) {
            k = mbrtowc(&wc, s, len, &st);
            if (k == (size_t)-1 || k == (size_t)-2 || k == 0) {
                memset(&st, 0, sizeof st);
                wc = L'?';
                k = 1;
            }
        }
        int cw = wcwidth(wc);
        if (cw < 0) {
            wc = L'?';
            cw = 1;
        }
        if (cells + cw > w)
            break;
        out[n++] = wc;
        cells += cw;
        s += k;
        len -= k;
    }
    if (n == 0)
        return 0;
    attron(attr);
    mvaddnwstr(y, x, out, n);
    attroff(attr);
    return cells;
}

/* Like put, but a string longer than <w> cells ends with an ellipsis (assumes one cell per
 * character, which holds for URLs and names as typed in the config). */
static void put_cut(const struct rt_dashboard *d, int y, int x, int w, int attr, const char *s)
{
    size_t chars = 0;
    for (const char *p = s; *p; p++)
        chars += ((unsigned char)*p & 0xc0) != 0x80;
    if (w <= 1 || chars <= (size_t)w) {
        put(d, y, x, w, attr, s);
        return;
    }
    int drawn = put(d, y, x, w - 1, attr, s);
    put(d, y, x + drawn, 1, attr, d->utf8 ? "…" : "~");
}

/* Right-aligns <s> (ASCII) in <w> cells. */
static void put_right(const struct rt_dashboard *d, int y, int x, int w, int attr, const char *s)
{
    int len = (int)strlen(s);
    if (len > w)
        put(d, y, x, w, attr, s + (len - w));
    else
        put(d, y, x + w - len, len, attr, s);
}

/* Fills a whole row with <attr> (the title bar). */
static void fill_row(int y, int attr)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    (void)rows;
    attron(attr);
    mvhline(y, 0, ' ', cols);
    attroff(attr);
}

static void fmt_duration(char *out, size_t n, uint64_t ms)
{
    uint64_t s = ms / 1000;
    if (s >= 86400)
        snprintf(out, n, "%llud %02llu:%02llu:%02llu", (unsigned long long)(s / 86400),
                 (unsigned long long)(s / 3600 % 24), (unsigned long long)(s / 60 % 60),
                 (unsigned long long)(s % 60));
    else
        snprintf(out, n, "%02llu:%02llu:%02llu", (unsigned long long)(s / 3600),
                 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
}

/* ---- sampling ---- */

static const struct sample *find_sample(const struct rt_dashboard *d, uint64_t id)
{
    for (size_t i = 0; i < d->nsamples; i++)
        if (d->samples[i].id == id)
            return &d->samples[i];
    return NULL;
}

/* Takes the totals of every backend now and turns the change since the last sample into
 * requests per second. */
static void take_sample(struct rt_dashboard *d)
{
    struct rt_fleet_view *v = rt_fleet_acquire();
    uint64_t now = rt_now_ms();
    double dt = (double)(now - d->sample_ms) / 1000.0;
    struct sample *next = rt_calloc(v->n + 1, sizeof *next);
    for (size_t i = 0; i < v->n; i++) {
        struct rt_backend *b = v->b[i];
        uint64_t done = atomic_load_explicit(&b->completed_total, memory_order_relaxed) +
                        atomic_load_explicit(&b->failed_total, memory_order_relaxed);
        const struct sample *old = find_sample(d, b->id);
        next[i].id = b->id;
        next[i].done = done;
        next[i].rps = old && dt > 0 && done >= old->done ? (double)(done - old->done) / dt : 0;
    }
    rt_fleet_view_unref(v);
    rt_free(d->samples);
    d->samples = next;
    d->nsamples = v->n;
    d->sample_ms = now;
}

/* ---- the screen ---- */

/* Column layout of the server table for the current width. */
struct layout {
    int server, health, circuit, bar, count, run, wait, kv, rps, fail, check; /* x of each */
    int server_w, bar_w;
};

#define W_HEALTH  7
#define W_CIRCUIT 9
#define W_COUNT   7
#define W_NUM     5
#define W_RPS     7
#define W_FAIL    6
#define W_CHECK   7

static void make_layout(struct layout *l, int cols, int longest_server)
{
    int fixed = 1 + W_HEALTH + 1 + W_CIRCUIT + 1 + W_COUNT + 1 + W_NUM + 1 + W_NUM + 1 + W_NUM +
                1 + W_RPS + 1 + W_FAIL + 1 + W_CHECK + 1;
    int rest = cols - fixed; /* for the server column, the bar and its gap */
    int want = longest_server < 6 ? 6 : longest_server > 40 ? 40 : longest_server;
    l->server_w = want;
    l->bar_w = 0;
    if (rest - want >= 6) {
        l->bar_w = rest - want - 1 > 20 ? 20 : rest - want - 1;
    } else {
        /* Narrow: the server column gives way down to 16 cells (an address and port); what does not fit is clipped
         * on the right. */
        l->server_w = rest > 16 ? (rest < want ? rest : want) : (want < 16 ? want : 16);
    }
    int x = 1;
    l->server = x;
    x += l->server_w + 1;
    l->health = x;
    x += W_HEALTH + 1;
    l->circuit = x;
    x += W_CIRCUIT + 1;
    l->bar = x;
    x += l->bar_w ? l->bar_w + 1 : 0;
    l->count = x;
    x += W_COUNT + 1;
    l->run = x;
    x += W_NUM + 1;
    l->wait = x;
    x += W_NUM + 1;
    l->kv = x;
    x += W_NUM + 1;
    l->rps = x;
    x += W_RPS + 1;
    l->fail = x;
    x += W_FAIL + 1;
    l->check = x;
}

/* The text shown for a server: its URL without the scheme (so a narrow column keeps the port),
 * after its name when that is not the default (host:port). */
static void server_label(const struct rt_backend *b, char *out, size_t n)
{
    const char *url = b->url;
    const char *sep = strstr(url, "://");
    if (sep)
        url = sep + 3;
    char def[300];
    snprintf(def, sizeof def, "%s:%d", b->host, b->port);
    if (b->name && b->name[0] && strcmp(b->name, def) != 0)
        snprintf(out, n, "%s %s", b->name, url);
    else
        snprintf(out, n, "%s", url);
}

static void draw_bar(const struct rt_dashboard *d, int y, int x, int w, int inflight, int cap)
{
    if (w <= 0)
        return;
    double frac = cap > 0 ? (double)inflight / cap : 0;
    if (frac > 1)
        frac = 1;
    int full = (int)lround(frac * w);
    if (inflight > 0 && full == 0)
        full = 1;
    int pair = frac >= 0.9 ? C_RED : frac >= 0.6 ? C_YELLOW : C_GREEN;
    for (int i = 0; i < w; i++) {
        if (i < full)
            put(d, y, x + i, 1, attr_color(d, pair), d->utf8 ? "█" : "#");
        else
            put(d, y, x + i, 1, attr_color(d, C_DIM), d->utf8 ? "░" : ".");
    }
}

struct totals {
    size_t n, healthy;
    long inflight, capacity;
    double rps;
    uint64_t failed;
};

static void draw_server(const struct rt_dashboard *d, const struct layout *l, int y,
                        struct rt_backend *b, struct totals *t)
{
    char s[512];
    bool gate = rt_fleet_check_gate();
    bool checked = atomic_load_explicit(&b->checked, memory_order_relaxed);
    bool healthy = atomic_load_explicit(&b->healthy, memory_order_relaxed);
    bool draining = atomic_load_explicit(&b->draining, memory_order_relaxed);
    int circuit = atomic_load_explicit(&b->circuit, memory_order_relaxed);
    int inflight = atomic_load_explicit(&b->inflight, memory_order_relaxed);
    int cap = atomic_load_explicit(&b->capacity, memory_order_relaxed);
    uint64_t failed = atomic_load_explicit(&b->failed_total, memory_order_relaxed);
    const struct sample *smp = find_sample(d, b->id);
    double rps = smp ? smp->rps : 0;

    server_label(b, s, sizeof s);
    put_cut(d, y, l->server, l->server_w, 0, s);

    if (gate && !checked)
        put(d, y, l->health, W_HEALTH, attr_color(d, C_YELLOW), d->utf8 ? "… check" : ". check");
    else if (healthy)
        put(d, y, l->health, W_HEALTH, attr_color(d, C_GREEN) | A_BOLD, d->utf8 ? "● up" : "+ up");
    else
        put(d, y, l->health, W_HEALTH, attr_color(d, C_RED) | A_BOLD,
            d->utf8 ? "✗ down" : "x down");
    t->n++;
    t->healthy += (!gate || checked) && healthy;

    if (draining)
        put(d, y, l->circuit, W_CIRCUIT, attr_color(d, C_YELLOW), "draining");
    else if (circuit == RT_CIRCUIT_OPEN)
        put(d, y, l->circuit, W_CIRCUIT, attr_color(d, C_RED) | A_BOLD, "OPEN");
    else if (circuit == RT_CIRCUIT_HALF_OPEN)
        put(d, y, l->circuit, W_CIRCUIT, attr_color(d, C_YELLOW), "half-open");
    else
        put(d, y, l->circuit, W_CIRCUIT, attr_color(d, C_DIM), "closed");

    draw_bar(d, y, l->bar, l->bar_w, inflight, cap);
    snprintf(s, sizeof s, "%d/%d", inflight, cap);
    put_right(d, y, l->count, W_COUNT, inflight >= cap && cap > 0 ? A_BOLD : 0, s);
    t->inflight += inflight;
    t->capacity += cap;

    if (atomic_load_explicit(&b->scrape_ok, memory_order_relaxed)) {
        snprintf(s, sizeof s, "%.0f", atomic_load_explicit(&b->scraped_running,
                                                           memory_order_relaxed));
        put_right(d, y, l->run, W_NUM, 0, s);
        double waiting = atomic_load_explicit(&b->scraped_waiting, memory_order_relaxed);
        snprintf(s, sizeof s, "%.0f", waiting);
        put_right(d, y, l->wait, W_NUM, waiting > 0 ? attr_color(d, C_YELLOW) : 0, s);
        double kv = atomic_load_explicit(&b->kv_cache_perc, memory_order_relaxed);
        if (kv >= 0)
            snprintf(s, sizeof s, "%.0f%%", kv);
        else
            snprintf(s, sizeof s, "-");
        put_right(d, y, l->kv, W_NUM, kv >= 90 ? attr_color(d, C_RED) : 0, s);
    } else {
        put_right(d, y, l->run, W_NUM, attr_color(d, C_DIM), "-");
        put_right(d, y, l->wait, W_NUM, attr_color(d, C_DIM), "-");
        put_right(d, y, l->kv, W_NUM, attr_color(d, C_DIM), "-");
    }

    snprintf(s, sizeof s, "%.1f", rps);
    put_right(d, y, l->rps, W_RPS, 0, s);
    t->rps += rps;
    snprintf(s, sizeof s, "%llu", (unsigned long long)failed);
    put_right(d, y, l->fail, W_FAIL, failed > 0 ? attr_color(d, C_RED) : 0, s);
    t->failed += failed;

    struct rt_health_stats hs;
    rt_backend_health_stats(b, &hs);
    if (hs.total_checks == 0)
        snprintf(s, sizeof s, "-");
    else if (hs.last_response_time_s < 10)
        snprintf(s, sizeof s, "%.0fms", hs.last_response_time_s * 1000);
    else
        snprintf(s, sizeof s, "%.0fs", hs.last_response_time_s);
    put_right(d, y, l->check, W_CHECK, hs.consecutive_failures > 0 ? attr_color(d, C_RED) : 0,
              s);
}

static void draw_title(const struct rt_dashboard *d, int cols)
{
    char policy[64] = "-";
    struct rt_settings *set = rt_settings_acquire();
    if (set) {
        snprintf(policy, sizeof policy, "%s", set->cfg->balancing.policy);
        rt_settings_unref(set);
    }
    char up[48], s[512];
    fmt_duration(up, sizeof up, rt_now_ms() - d->start_ms);
    snprintf(s, sizeof s, " vllm-router %s  %s  policy %s  up %s", RT_VERSION, d->listen, policy,
             up);
    int attr = A_REVERSE | A_BOLD;
    fill_row(0, attr);
    put(d, 0, 0, cols, attr, s);
    const char *right = d->quitting ? "shutting down… " : "q quit ";
    if (!d->utf8 && d->quitting)
        right = "shutting down... ";
    int rlen = (int)strlen(right) - (d->utf8 && d->quitting ? 2 : 0);
    if (cols - rlen > (int)strlen(s) + 1)
        put(d, 0, cols - rlen, rlen, attr, right);
}

static void draw_events(struct rt_dashboard *d, int top, int bottom, int cols)
{
    if (top > bottom)
        return;
    put(d, top, 0, cols, A_BOLD, " Recent events");
    int lines = bottom - top;
    pthread_mutex_lock(&d->ev_mu);
    uint64_t count = d->ev_count;
    uint64_t shown = count < (uint64_t)lines ? count : (uint64_t)lines;
    if (shown > EVENTS)
        shown = EVENTS;
    for (uint64_t i = 0; i < shown; i++) {
        const struct event *e = &d->ev[(count - shown + i) % EVENTS];
        struct tm tm;
        localtime_r(&e->t, &tm);
        char line[EVENT_LEN + 48];
        size_t n = strftime(line, sizeof line, " %H:%M:%S ", &tm);
        snprintf(line + n, sizeof line - n, "%-7s %s", rt_log_level_name(e->level), e->msg);
        int attr = e->level >= RT_LOG_ERROR   ? attr_color(d, C_RED)
                   : e->level == RT_LOG_WARNING ? attr_color(d, C_YELLOW)
                   : e->level == RT_LOG_DEBUG   ? attr_color(d, C_DIM)
                                                : 0;
        put(d, top + 1 + (int)i, 0, cols, attr, line);
    }
    pthread_mutex_unlock(&d->ev_mu);
}

static void draw(struct rt_dashboard *d)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    erase();
    draw_title(d, cols);

    struct rt_fleet_view *v = rt_fleet_acquire();
    int longest = 6;
    char label[512];
    for (size_t i = 0; i < v->n; i++) {
        server_label(v->b[i], label, sizeof label);
        int len = (int)strlen(label);
        longest = len > longest ? len : longest;
    }
    struct layout l;
    make_layout(&l, cols, longest);
    int hdr = A_BOLD | attr_color(d, C_CYAN);
    put(d, 1, l.server, l.server_w, hdr, "SERVER");
    put(d, 1, l.health, W_HEALTH, hdr, "HEALTH");
    put(d, 1, l.circuit, W_CIRCUIT, hdr, "CIRCUIT");
    put(d, 1, l.bar_w ? l.bar : l.count, l.bar_w + W_COUNT + 1, hdr, "LOAD");
    put_right(d, 1, l.run, W_NUM, hdr, "RUN");
    put_right(d, 1, l.wait, W_NUM, hdr, "WAIT");
    put_right(d, 1, l.kv, W_NUM, hdr, "KV%");
    put_right(d, 1, l.rps, W_RPS, hdr, "REQ/S");
    put_right(d, 1, l.fail, W_FAIL, hdr, "FAIL");
    put_right(d, 1, l.check, W_CHECK, hdr, "CHECK");

    /* Rows for servers: what is left after the header, the summary, the events title and three
     * events; when they do not all fit, the last row says how many are hidden. */
    int avail = rows - 2 - 1 - 1 - 3;
    if (avail < 1)
        avail = 1;
    struct totals t = {0};
    int y = 2;
    for (size_t i = 0; i < v->n; i++) {
        if ((int)i == avail - 1 && v->n > (size_t)avail) {
            snprintf(label, sizeof label, " … %zu more servers", v->n - i);
            put(d, y++, 0, cols, attr_color(d, C_DIM), d->utf8 ? label : label + 4);
            /* Still count the hidden ones in the summary. */
            struct layout off = l;
            off.server = off.health = off.circuit = off.bar = off.count = off.run = off.wait =
                off.kv = off.rps = off.fail = off.check = cols;
            for (; i < v->n; i++)
                draw_server(d, &off, rows, v->b[i], &t);
            break;
        }
        draw_server(d, &l, y++, v->b[i], &t);
    }
    if (v->n == 0)
        put(d, y++, 1, cols - 1, attr_color(d, C_DIM), "no servers configured");
    rt_fleet_view_unref(v);

    char s[512];
    size_t queued = d->queued ? d->queued(d->arg) : 0;
    snprintf(s, sizeof s, " servers %zu/%zu healthy   in-flight %ld/%ld   %.1f req/s   queued %zu"
             "   failed %llu", t.healthy, t.n, t.inflight, t.capacity, t.rps, queued,
             (unsigned long long)t.failed);
    int sattr = A_BOLD | (t.healthy < t.n ? attr_color(d, C_YELLOW) : 0);
    y++;
    put(d, y++, 0, cols, sattr, s);
    draw_events(d, y + 1, rows - 1, cols);
    refresh();
}

/* ---- events ---- */

static void on_log(enum rt_log_level level, const char *msg, void *arg)
{
    struct rt_dashboard *d = arg;
    pthread_mutex_lock(&d->ev_mu);
    struct event *e = &d->ev[d->ev_count % EVENTS];
    e->t = time(NULL);
    e->level = level;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    d->ev_count++;
    pthread_mutex_unlock(&d->ev_mu);
}

/* ---- loop callbacks ---- */

static void on_tick(uv_timer_t *t)
{
    struct rt_dashboard *d = t->data;
    if (d->stopped)
        return;
    /* A reload may change the refresh interval. */
    struct rt_settings *set = rt_settings_acquire();
    if (set) {
        double r = set->cfg->dashboard.refresh_interval;
        rt_settings_unref(set);
        if (r > 0 && fabs(r - d->refresh_s) > 1e-9) {
            d->refresh_s = r;
            uv_timer_set_repeat(&d->timer, (uint64_t)(r * 1000));
        }
    }
    take_sample(d);
    draw(d);
}

static void on_winch(uv_signal_t *s, int signum)
{
    (void)signum;
    struct rt_dashboard *d = s->data;
    if (d->stopped)
        return;
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
        resizeterm(ws.ws_row, ws.ws_col);
    clear(); /* the whole screen is stale after a resize */
    draw(d);
}

static void on_key(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct rt_dashboard *d = p->data;
    if (d->stopped)
        return;
    if (status < 0) {
        uv_poll_stop(p);
        return;
    }
    bool any = false;
    for (int ch = getch(); ch != ERR; ch = getch()) {
        any = true;
        if ((ch == 'q' || ch == 'Q') && !d->quitting) {
            d->quitting = true;
            RT_INFO("dashboard: q pressed, shutting down");
            if (d->on_quit)
                d->on_quit(d->arg);
            if (d->stopped)
                return; /* on_quit stopped us; the screen is gone */
            draw(d);
        } else if (ch == KEY_RESIZE || ch == 12 /* ^L */) {
            clear();
            draw(d);
        }
    }
    /* Readable with nothing to read means end of file (a closed terminal): stop polling rather
     * than spin. */
    d->idle_reads = any ? 0 : d->idle_reads + 1;
    if (d->idle_reads >= 3)
        uv_poll_stop(p);
}

static void on_closed(uv_handle_t *h)
{
    struct rt_dashboard *d = h->data;
    if (--d->open_handles > 0)
        return;
    pthread_mutex_destroy(&d->ev_mu);
    rt_free(d->samples);
    rt_free(d->listen);
    rt_free(d);
}

/* ---- start / stop ---- */

struct rt_dashboard *rt_dashboard_start(uv_loop_t *loop, const struct rt_dashboard_conf *conf)
{
    if (!isatty(STDOUT_FILENO))
        return NULL;
    setlocale(LC_CTYPE, "");
    struct rt_dashboard *d = rt_calloc(1, sizeof *d);
    d->stdin_flags = fcntl(STDIN_FILENO, F_GETFL);
    d->scr = newterm(NULL, stdout, stdin);
    if (!d->scr) {
        rt_free(d);
        return NULL;
    }
    set_term(d->scr);
    d->utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    cbreak();
    noecho();
    nonl();
    nodelay(stdscr, TRUE);
    keypad(stdscr, TRUE);
    curs_set(0);
    if (has_colors()) {
        d->color = true;
        start_color();
        use_default_colors();
        init_pair(C_GREEN, COLOR_GREEN, -1);
        init_pair(C_YELLOW, COLOR_YELLOW, -1);
        init_pair(C_RED, COLOR_RED, -1);
        init_pair(C_CYAN, COLOR_CYAN, -1);
        init_pair(C_DIM, COLORS >= 16 ? 8 : COLOR_WHITE, -1);
    }

    d->loop = loop;
    d->listen = rt_strdup(conf->listen ? conf->listen : "");
    d->refresh_s = conf->refresh_s > 0 ? conf->refresh_s : 1.0;
    d->queued = conf->queued;
    d->on_quit = conf->on_quit;
    d->arg = conf->arg;
    d->start_ms = d->sample_ms = rt_now_ms();
    pthread_mutex_init(&d->ev_mu, NULL);

    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    d->open_handles++;
    uint64_t every = (uint64_t)(d->refresh_s * 1000);
    uv_timer_start(&d->timer, on_tick, every, every);

    /* libuv's handler replaces the one ncurses installed; on_winch does the resize itself. */
    uv_signal_init(loop, &d->winch);
    d->winch.data = d;
    d->open_handles++;
    uv_signal_start(&d->winch, on_winch, SIGWINCH);

    /* Keys: only when stdin can be polled (a terminal; not /dev/null or a file). */
    if (uv_poll_init(loop, &d->keys, STDIN_FILENO) == 0) {
        d->keys.data = d;
        d->keys_on = true;
        d->open_handles++;
        uv_poll_start(&d->keys, UV_READABLE, on_key);
    }

    rt_log_set_tap(on_log, d);
    take_sample(d);
    draw(d);
    return d;
}

void rt_dashboard_stop(struct rt_dashboard *d)
{
    if (!d || d->stopped)
        return;
    d->stopped = true;
    rt_log_set_tap(NULL, NULL);
    endwin();
    delscreen(d->scr);
    d->scr = NULL;
    /* uv_poll_init made stdin non-blocking; the shell after us expects it as it was. */
    if (d->stdin_flags != -1)
        fcntl(STDIN_FILENO, F_SETFL, d->stdin_flags);
    uv_close((uv_handle_t *)&d->timer, on_closed);
    uv_close((uv_handle_t *)&d->winch, on_closed);
    if (d->keys_on)
        uv_close((uv_handle_t *)&d->keys, on_closed);
}
