/* gen_plan.c - the statement plan behind `cdcflow generate`: a seeded,
 * reproducible sequence of inserts, updates and deletes over customers,
 * products, inventory and orders (deploy/postgres/schema.sql) that respects
 * their foreign keys.  No database here: generate.c runs the plan. */
#include "ops/ops.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>

#define POOL_CAP   (16 * 1024 * 1024)   /* rows per table the planner may know */
#define PARAM_LEN  320                 /* longest rendered value (descriptions) */
#define DEAD       INT64_MIN            /* parent deleted: its children are gone */
#define CLOCK_BASE 1735689600           /* 2025-01-01T00:00:00Z: timestamps are
                                         * synthetic so that one seed always
                                         * gives the same rows */

/* ---------------------------------------------------------- statements */

enum {
    S_INS_CUSTOMER, S_INS_PRODUCT, S_INS_INVENTORY, S_INS_ORDER,
    S_UPD_CUSTOMER_TIER, S_UPD_CUSTOMER_MOVE, S_UPD_CUSTOMER_STATUS,
    S_UPD_ORDER, S_UPD_PRODUCT, S_UPD_INVENTORY,
    S_DEL_ORDERS_OF_CUSTOMER, S_DEL_CUSTOMER, S_DEL_ORDER,
    S_DEL_INVENTORY_OF_PRODUCT, S_DEL_PRODUCT,
    S_COUNT
};

/* Primary keys are drawn from each table's own sequence beforehand
 * (cf_ops_gen_reserve_ids), so the plan knows every id without waiting for
 * RETURNING and can run pipelined. */
static const cf_ops_gen_sql statements[S_COUNT] = {
    [S_INS_CUSTOMER] = { "cf_ins_customer",
        "INSERT INTO customers (customer_id, email, first_name, last_name, phone, address_line1, "
        "city, state, postal_code, country, registration_date, last_updated, is_active, "
        "customer_tier, lifetime_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
        "$12, $13, $14, $15)", 15 },
    [S_INS_PRODUCT] = { "cf_ins_product",
        "INSERT INTO products (product_id, sku, name, description, category, unit_price, "
        "weight_kg, is_discontinued, created_at, last_updated) VALUES ($1, $2, $3, $4, $5, $6, "
        "$7, $8, $9, $10)", 10 },
    [S_INS_INVENTORY] = { "cf_ins_inventory",
        "INSERT INTO inventory (inventory_id, product_id, warehouse, quantity_on_hand, "
        "quantity_reserved, reorder_level, unit_cost, is_tracked, last_restocked, last_updated) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", 10 },
    [S_INS_ORDER] = { "cf_ins_order",
        "INSERT INTO orders (order_id, customer_id, order_date, status, item_count, total_amount, "
        "currency, is_gift, shipping_city, shipping_country, notes, shipped_at, last_updated) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)", 13 },
    [S_UPD_CUSTOMER_TIER] = { "cf_upd_customer_tier",
        "UPDATE customers SET customer_tier = $2, lifetime_value = $3, last_updated = $4 "
        "WHERE customer_id = $1", 4 },
    [S_UPD_CUSTOMER_MOVE] = { "cf_upd_customer_move",
        "UPDATE customers SET address_line1 = $2, city = $3, state = $4, postal_code = $5, "
        "country = $6, phone = $7, last_updated = $8 WHERE customer_id = $1", 8 },
    [S_UPD_CUSTOMER_STATUS] = { "cf_upd_customer_status",
        "UPDATE customers SET is_active = $2, email = $3, last_updated = $4 "
        "WHERE customer_id = $1", 4 },
    [S_UPD_ORDER] = { "cf_upd_order",
        "UPDATE orders SET status = $2, shipped_at = COALESCE($3::timestamptz, shipped_at), "
        "notes = COALESCE($4::text, notes), last_updated = $5 WHERE order_id = $1", 5 },
    [S_UPD_PRODUCT] = { "cf_upd_product",
        "UPDATE products SET unit_price = $2, is_discontinued = $3, last_updated = $4 "
        "WHERE product_id = $1", 4 },
    [S_UPD_INVENTORY] = { "cf_upd_inventory",
        "UPDATE inventory SET quantity_on_hand = GREATEST(quantity_on_hand + $2::integer, 0), "
        "quantity_reserved = $3, last_restocked = COALESCE($4::timestamptz, last_restocked), "
        "last_updated = $5 WHERE inventory_id = $1", 5 },
    [S_DEL_ORDERS_OF_CUSTOMER] = { "cf_del_orders_of_customer",
        "DELETE FROM orders WHERE customer_id = $1", 1 },
    [S_DEL_CUSTOMER] = { "cf_del_customer",
        "DELETE FROM customers WHERE customer_id = $1", 1 },
    [S_DEL_ORDER] = { "cf_del_order",
        "DELETE FROM orders WHERE order_id = $1", 1 },
    [S_DEL_INVENTORY_OF_PRODUCT] = { "cf_del_inventory_of_product",
        "DELETE FROM inventory WHERE product_id = $1", 1 },
    [S_DEL_PRODUCT] = { "cf_del_product",
        "DELETE FROM products WHERE product_id = $1", 1 },
};

const cf_ops_gen_sql *cf_ops_gen_statements(int *n)
{
    *n = S_COUNT;
    return statements;
}

static const char *const table_names[CF_GEN_NTABLES] = {
    "customers", "products", "inventory", "orders"
};
static const char *const kind_names[CF_GEN_NKINDS] = { "insert", "update", "delete" };

const char *cf_ops_gen_table_name(cf_gen_table t)
{
    return (unsigned)t < CF_GEN_NTABLES ? table_names[t] : "?";
}

const char *cf_ops_gen_kind_name(cf_gen_kind k)
{
    return (unsigned)k < CF_GEN_NKINDS ? kind_names[k] : "?";
}

/* ---------------------------------------------------------- value data */

typedef struct { const char *shown, *ascii; } name_t;

/* Mostly plain ASCII, with accents, apostrophes, hyphens and a few non-Latin
 * scripts: what a real customer table holds and what breaks naive code. */
/* The last N_INTL_FIRST / N_INTL_LAST entries of each list are the non-ASCII
 * names, drawn one time in ten. */
#define N_INTL_FIRST 14
#define N_INTL_LAST  10

static const name_t first_names[] = {
    { "James", "james" }, { "Mary", "mary" }, { "John", "john" }, { "Patricia", "patricia" },
    { "Robert", "robert" }, { "Jennifer", "jennifer" }, { "Michael", "michael" },
    { "Linda", "linda" }, { "William", "william" }, { "Elizabeth", "elizabeth" },
    { "David", "david" }, { "Barbara", "barbara" }, { "Richard", "richard" }, { "Susan", "susan" },
    { "Joseph", "joseph" }, { "Jessica", "jessica" }, { "Thomas", "thomas" }, { "Sarah", "sarah" },
    { "Daniel", "daniel" }, { "Karen", "karen" }, { "Emily", "emily" }, { "Kevin", "kevin" },
    { "Aisha", "aisha" }, { "Wei", "wei" }, { "Priya", "priya" }, { "Carlos", "carlos" },
    { "Fatima", "fatima" }, { "Hiroshi", "hiroshi" }, { "Olga", "olga" }, { "Mohammed", "mohammed" },
    { "Anna-Lena", "anna-lena" }, { "Liam", "liam" }, { "Noah", "noah" }, { "Emma", "emma" },
    { "Olivia", "olivia" }, { "Sofia", "sofia" }, { "Lucas", "lucas" }, { "Mia", "mia" },
    /* the occasional non-ASCII name */
    { "José", "jose" }, { "Zoë", "zoe" }, { "Łukasz", "lukasz" }, { "Søren", "soren" },
    { "François", "francois" }, { "Björn", "bjorn" }, { "Renée", "renee" }, { "Chloé", "chloe" },
    { "Jürgen", "jurgen" }, { "Małgorzata", "malgorzata" }, { "Ἀλέξανδρος", "alexandros" },
    { "Дмитрий", "dmitry" }, { "美咲", "misaki" }, { "민준", "minjun" },
};

static const name_t last_names[] = {
    { "Smith", "smith" }, { "Johnson", "johnson" }, { "Williams", "williams" }, { "Brown", "brown" },
    { "Jones", "jones" }, { "Garcia", "garcia" }, { "Miller", "miller" }, { "Davis", "davis" },
    { "Rodriguez", "rodriguez" }, { "Martinez", "martinez" }, { "Hernandez", "hernandez" },
    { "Lopez", "lopez" }, { "Wilson", "wilson" }, { "Anderson", "anderson" }, { "Taylor", "taylor" },
    { "Thomas", "thomas" }, { "Moore", "moore" }, { "Jackson", "jackson" }, { "Martin", "martin" },
    { "Lee", "lee" }, { "Nguyen", "nguyen" }, { "Patel", "patel" }, { "Kim", "kim" },
    { "Chen", "chen" }, { "Singh", "singh" }, { "Okafor", "okafor" }, { "Kowalski", "kowalski" },
    { "O'Brien", "obrien" }, { "Smith-Jones", "smith-jones" }, { "van der Berg", "vanderberg" },
    /* the occasional non-ASCII name */
    { "Müller", "muller" }, { "García", "garcia" }, { "Nguyễn", "nguyen" }, { "Ødegård", "odegard" },
    { "Štěpánek", "stepanek" }, { "Żółć", "zolc" }, { "Иванова", "ivanova" }, { "佐藤", "sato" },
    { "김", "kim" }, { "Παπαδόπουλος", "papadopoulos" },
};

typedef struct { const char *city, *state, *country, *postal_fmt, *phone_fmt; } place_t;

/* postal_fmt: '#' digit, 'A' letter.  phone_fmt: '#' digit. */
static const place_t places[] = {
    { "New York", "NY", "USA", "100##", "+1-212-###-####" },
    { "Los Angeles", "CA", "USA", "900##", "+1-213-###-####" },
    { "Chicago", "IL", "USA", "606##", "+1-312-###-####" },
    { "Houston", "TX", "USA", "770##", "+1-713-###-####" },
    { "Phoenix", "AZ", "USA", "850##", "+1-602-###-####" },
    { "Philadelphia", "PA", "USA", "191##", "+1-215-###-####" },
    { "San Antonio", "TX", "USA", "782##", "+1-210-###-####" },
    { "San Diego", "CA", "USA", "921##", "+1-619-###-####" },
    { "Dallas", "TX", "USA", "752##", "+1-214-###-####" },
    { "Seattle", "WA", "USA", "981##", "+1-206-###-####" },
    { "Denver", "CO", "USA", "802##", "+1-303-###-####" },
    { "Boston", "MA", "USA", "021##", "+1-617-###-####" },
    { "Miami", "FL", "USA", "331##", "+1-305-###-####" },
    { "Atlanta", "GA", "USA", "303##", "+1-404-###-####" },
    { "Portland", "OR", "USA", "972##", "+1-503-###-####" },
    { "Toronto", "ON", "Canada", "M#A #A#", "+1-416-###-####" },
    { "Montréal", "QC", "Canada", "H#A #A#", "+1-514-###-####" },
    { "Vancouver", "BC", "Canada", "V#A #A#", "+1-604-###-####" },
    { "London", NULL, "United Kingdom", "SW# #AA", "+44 20 #### ####" },
    { "Manchester", NULL, "United Kingdom", "M# #AA", "+44 161 ### ####" },
    { "München", "Bayern", "Germany", "80###", "+49 89 ########" },
    { "Berlin", "Berlin", "Germany", "10###", "+49 30 ########" },
    { "Paris", "Île-de-France", "France", "750##", "+33 1 ## ## ## ##" },
    { "Lyon", "Auvergne-Rhône-Alpes", "France", "6900#", "+33 4 ## ## ## ##" },
    { "Madrid", "Madrid", "Spain", "280##", "+34 91 ### ####" },
    { "São Paulo", "SP", "Brazil", "0####-###", "+55 11 ####-####" },
    { "Ciudad de México", "CDMX", "Mexico", "0####", "+52 55 #### ####" },
    { "Tokyo", NULL, "Japan", "1##-####", "+81 3-####-####" },
    { "Sydney", "NSW", "Australia", "2###", "+61 2 #### ####" },
    { "Bengaluru", "Karnataka", "India", "560###", "+91 80 #### ####" },
    { "Kraków", NULL, "Poland", "3#-###", "+48 12 ### ## ##" },
    { "Zürich", "ZH", "Switzerland", "80##", "+41 44 ### ## ##" },
};

static const char *const streets[] = {
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Park Rd", "Elm St", "Washington Blvd",
    "Lake View Ter", "Sunset Blvd", "Hillcrest Way", "River Rd", "2nd St", "Church Lane",
    "Rue de la Paix", "Königstraße", "Calle Mayor", "Rua Augusta", "Via Roma",
};

static const char *const email_domains[] = {
    "example.com", "example.org", "example.net", "mail.example.com", "shop.example",
};

static const char *const adjectives[] = {
    "Wireless", "Ergonomic", "Organic", "Stainless", "Compact", "Deluxe", "Vintage",
    "Smart", "Portable", "Handmade", "Recycled", "Ultra-Light", "Crème", "Heavy-Duty",
};
static const char *const nouns[] = {
    "Headphones", "Office Chair", "Coffee Beans", "Water Bottle", "Backpack", "Desk Lamp",
    "Keyboard", "Running Shoes", "Yoga Mat", "Espresso Maker", "Notebook", "Phone Case",
    "Blender", "Tea Set", "Brûlée Torch", "Hoodie",
};
static const char *const categories[] = {
    "electronics", "furniture", "grocery", "sports", "kitchen", "apparel", "stationery", "home",
};
static const char *const descriptions[] = {
    "Bestseller, ships in 2 days.",
    "Limited edition; while stocks last.",
    "Made with 100% recycled materials.",
    "Includes a 2-year warranty. Batteries not included.",
    "Customer favourite — \"would buy again\".",
    "Hand-finished in small batches.",
    "Dishwasher safe. Do not microwave.",
};
static const char *const warehouses[] = { "us-east-1", "us-west-2", "eu-central-1", "ap-south-1" };
static const char *const currencies[] = { "USD", "USD", "USD", "USD", "USD", "USD", "USD",
                                          "EUR", "EUR", "GBP" };
static const char *const order_notes[] = {
    "Leave at the front door", "Gift wrap please 🎁", "Call before delivery",
    "Deliver after 5pm", "Fragile: handle with care", "Ring twice — bell is broken",
};

/* Order life cycle; an update moves an order one step. */
enum { ST_PENDING, ST_PAID, ST_SHIPPED, ST_DELIVERED, ST_CANCELLED, ST_COUNT };
static const char *const order_status[ST_COUNT] = {
    "pending", "paid", "shipped", "delivered", "cancelled"
};

#define NELEM(a) (sizeof (a) / sizeof *(a))

/* -------------------------------------------------------- id hash map */

/* int64 -> int64, open addressing.  Tracks per customer (product) how many
 * orders (inventory rows) the planner knows of, or DEAD once deleted. */
typedef struct imap {
    int64_t *keys, *vals;
    uint8_t *used;
    size_t   cap, n;
} imap;

static size_t imap_slot(const imap *m, int64_t k)
{
    uint64_t h = (uint64_t)k * 0x9e3779b97f4a7c15ULL;
    size_t i = (size_t)(h >> 17) & (m->cap - 1);
    while (m->used[i] && m->keys[i] != k)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int imap_grow(imap *m, cf_err *err)
{
    imap nm = { 0 };
    nm.cap = m->cap ? m->cap * 2 : 1024;
    nm.keys = malloc(nm.cap * sizeof *nm.keys);
    nm.vals = malloc(nm.cap * sizeof *nm.vals);
    nm.used = calloc(nm.cap, 1);
    if (!nm.keys || !nm.vals || !nm.used) {
        free(nm.keys), free(nm.vals), free(nm.used);
        return cf_err_set(err, CF_E_NOMEM, "out of memory growing an id map");
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->used[i]) {
            size_t j = imap_slot(&nm, m->keys[i]);
            nm.used[j] = 1;
            nm.keys[j] = m->keys[i];
            nm.vals[j] = m->vals[i];
            nm.n++;
        }
    free(m->keys), free(m->vals), free(m->used);
    *m = nm;
    return 0;
}

static int64_t imap_get(const imap *m, int64_t k)
{
    if (!m->cap)
        return 0;
    size_t i = imap_slot(m, k);
    return m->used[i] ? m->vals[i] : 0;
}

static int imap_set(imap *m, int64_t k, int64_t v, cf_err *err)
{
    if ((m->n + 1) * 2 > m->cap && imap_grow(m, err) < 0)
        return -1;
    size_t i = imap_slot(m, k);
    if (!m->used[i]) {
        m->used[i] = 1;
        m->keys[i] = k;
        m->n++;
    }
    m->vals[i] = v;
    return 0;
}

static void imap_free(imap *m)
{
    free(m->keys), free(m->vals), free(m->used);
    memset(m, 0, sizeof *m);
}

/* --------------------------------------------------------------- pools */

typedef struct row { int64_t id, parent; int32_t state; } row;

/* The rows of one table the planner may update or delete.  Removal swaps
 * with the last, so picks stay O(1) and deterministic. */
typedef struct pool {
    row   *rows;
    size_t n, alloc;
} pool;

static int pool_add(pool *p, int64_t id, int64_t parent, int32_t state, cf_err *err)
{
    if (p->n == p->alloc) {
        size_t na = p->alloc ? p->alloc * 2 : 1024;
        row *r;
        if (p->n >= POOL_CAP)
            return cf_err_set(err, CF_E_TOOBIG, "more than %d rows in one table to track", POOL_CAP);
        r = realloc(p->rows, na * sizeof *r);
        if (!r)
            return cf_err_set(err, CF_E_NOMEM, "out of memory tracking rows");
        p->rows = r;
        p->alloc = na;
    }
    p->rows[p->n++] = (row){ id, parent, state };
    return 0;
}

static void pool_remove(pool *p, size_t i)
{
    p->rows[i] = p->rows[--p->n];
}

/* -------------------------------------------------------------- planner */

typedef struct ids { int64_t *v; int64_t n, next; } ids;

/* What the next call must emit before drawing a new operation: the second
 * half of a product insert (its inventory row) or of a cascading delete. */
typedef enum { F_NONE, F_INVENTORY_OF, F_DELETE_CUSTOMER, F_DELETE_PRODUCT } follow_t;

struct cf_ops_gen {
    cf_ops_gen_opts o;
    cf_ops_rng rng;
    pool     pools[CF_GEN_NTABLES];
    imap     cust;              /* customer id -> orders known, or DEAD */
    imap     prod;              /* product id -> inventory rows known, or DEAD */
    ids      ids[CF_GEN_NTABLES];
    bool     reserved;
    int64_t  left_ins[CF_GEN_NTABLES];   /* customers, products, -, orders */
    int64_t  left_upd, left_del;
    int64_t  issued[CF_GEN_NTABLES][CF_GEN_NKINDS];
    int64_t  clock;             /* synthetic now, seconds since the epoch */
    follow_t follow;
    int64_t  follow_id;
    char     buf[CF_GEN_MAX_PARAMS][PARAM_LEN];
};

cf_ops_gen *cf_ops_gen_new(const cf_ops_gen_opts *o, cf_err *err)
{
    cf_ops_gen *g = calloc(1, sizeof *g);
    if (!g) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    g->o = *o;
    cf_ops_rng_seed(&g->rng, o->seed);
    g->left_ins[CF_GEN_CUSTOMERS] = o->customers;
    g->left_ins[CF_GEN_PRODUCTS] = o->products;
    g->left_ins[CF_GEN_ORDERS] = o->orders;
    g->clock = CLOCK_BASE;
    return g;
}

void cf_ops_gen_free(cf_ops_gen *g)
{
    if (!g)
        return;
    for (int t = 0; t < CF_GEN_NTABLES; t++) {
        free(g->pools[t].rows);
        free(g->ids[t].v);
    }
    imap_free(&g->cust);
    imap_free(&g->prod);
    free(g);
}

int64_t cf_ops_count_resolve(cf_ops_count c, int64_t inserted)
{
    if (!c.percent)
        return (int64_t)c.value;
    return (int64_t)((double)inserted * c.value / 100.0 + 0.5);
}

int cf_ops_gen_add_existing(cf_ops_gen *g, cf_gen_table t, int64_t id, int64_t parent,
                            int64_t state, cf_err *err)
{
    if ((unsigned)t >= CF_GEN_NTABLES)
        return cf_err_set(err, CF_E_ARG, "bad table %d", (int)t);
    if (t == CF_GEN_ORDERS && imap_set(&g->cust, parent, imap_get(&g->cust, parent) + 1, err) < 0)
        return -1;
    if (t == CF_GEN_INVENTORY && imap_set(&g->prod, parent, imap_get(&g->prod, parent) + 1, err) < 0)
        return -1;
    return pool_add(&g->pools[t], id, parent, (int32_t)state, err);
}

int cf_ops_gen_order_state(const char *status)
{
    for (int i = 0; i < ST_COUNT; i++)
        if (status && !strcmp(status, order_status[i]))
            return i;
    return ST_PENDING;
}

int64_t cf_ops_gen_planned_inserts(const cf_ops_gen *g, cf_gen_table t)
{
    switch (t) {
    case CF_GEN_CUSTOMERS: return g->o.customers;
    case CF_GEN_PRODUCTS:
    case CF_GEN_INVENTORY: return g->o.products;
    case CF_GEN_ORDERS:    return g->o.orders;
    default:               return 0;
    }
}

int cf_ops_gen_reserve_ids(cf_ops_gen *g, cf_ops_gen_ids_fn fn, void *ctx, cf_err *err)
{
    int64_t base = 0, known = 0;

    for (int t = 0; t < CF_GEN_NTABLES; t++) {
        int64_t n = cf_ops_gen_planned_inserts(g, (cf_gen_table)t);
        known += (int64_t)g->pools[t].n;
        base += n;
        if (n > POOL_CAP)
            return cf_err_set(err, CF_E_TOOBIG, "at most %d %s per run", POOL_CAP, table_names[t]);
        free(g->ids[t].v);
        g->ids[t] = (ids){ 0 };
        if (n == 0)
            continue;
        g->ids[t].v = malloc((size_t)n * sizeof(int64_t));
        if (!g->ids[t].v)
            return cf_err_set(err, CF_E_NOMEM, "out of memory reserving %" PRId64 " ids", n);
        g->ids[t].n = n;
        if (fn(ctx, (cf_gen_table)t, g->ids[t].v, n, err) < 0)
            return -1;
    }
    /* Percentages are of the rows this run inserts, or of what exists when
     * it inserts nothing (e.g. "--updates 10%" alone). */
    if (!base)
        base = known;
    g->left_upd = cf_ops_count_resolve(g->o.updates, base);
    g->left_del = cf_ops_count_resolve(g->o.deletes, base);
    g->reserved = true;
    return 0;
}

int64_t cf_ops_gen_issued(const cf_ops_gen *g, cf_gen_table t, cf_gen_kind k)
{
    return g->issued[t][k];
}

/* ------------------------------------------------------ value helpers */

static const char *pick(cf_ops_gen *g, const char *const *a, size_t n)
{
    return a[cf_ops_rng_below(&g->rng, n)];
}

#define PICK(g, a) pick((g), (a), NELEM(a))

static int64_t range(cf_ops_gen *g, int64_t lo, int64_t hi)
{
    return lo + (int64_t)cf_ops_rng_below(&g->rng, (uint64_t)(hi - lo + 1));
}

/* Parameter slot i as printf; returns the slot. */
static const char *setp(cf_ops_gen *g, cf_ops_gen_stmt *st, int i, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const char *setp(cf_ops_gen *g, cf_ops_gen_stmt *st, int i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->buf[i], PARAM_LEN, fmt, ap);
    va_end(ap);
    st->params[i] = g->buf[i];
    if (i >= st->nparams)
        st->nparams = i + 1;
    return g->buf[i];
}

static void setnull(cf_ops_gen_stmt *st, int i)
{
    st->params[i] = NULL;
    if (i >= st->nparams)
        st->nparams = i + 1;
}

static void set_ts(cf_ops_gen *g, cf_ops_gen_stmt *st, int i, int64_t t, bool tz)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    setp(g, st, i, "%04d-%02d-%02d %02d:%02d:%02d%s", tm.tm_year + 1900, tm.tm_mon + 1,
         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tz ? "+00" : "");
}

/* cents as "123.45" */
static void set_money(cf_ops_gen *g, cf_ops_gen_stmt *st, int i, int64_t cents)
{
    setp(g, st, i, "%" PRId64 ".%02d", cents / 100, (int)(cents % 100));
}

/* Expands '#' to a digit and 'A' to a capital letter. */
static void set_pattern(cf_ops_gen *g, cf_ops_gen_stmt *st, int i, const char *pat)
{
    char *o = g->buf[i];
    size_t n = 0;
    for (; *pat && n + 1 < PARAM_LEN; pat++)
        o[n++] = *pat == '#' ? (char)('0' + cf_ops_rng_below(&g->rng, 10))
               : *pat == 'A' ? (char)('A' + cf_ops_rng_below(&g->rng, 26)) : *pat;
    o[n] = '\0';
    st->params[i] = o;
    if (i >= st->nparams)
        st->nparams = i + 1;
}

static void set_email(cf_ops_gen *g, cf_ops_gen_stmt *st, int i, const name_t *f, const name_t *l)
{
    setp(g, st, i, "%s.%s%d@%s", f->ascii, l->ascii, (int)range(g, 1, 9999), PICK(g, email_domains));
}

static void set_address(cf_ops_gen *g, cf_ops_gen_stmt *st, int first, const place_t **where)
{
    const place_t *p = &places[cf_ops_rng_below(&g->rng, NELEM(places))];
    *where = p;
    if (cf_ops_rng_chance(&g->rng, 0.03))
        setnull(st, first);
    else
        setp(g, st, first, "%d %s", (int)range(g, 1, 9999), PICK(g, streets));
    setp(g, st, first + 1, "%s", p->city);
    if (p->state)
        setp(g, st, first + 2, "%s", p->state);
    else
        setnull(st, first + 2);
    set_pattern(g, st, first + 3, p->postal_fmt);
    setp(g, st, first + 4, "%s", p->country);
}

static const char *tier(cf_ops_gen *g)
{
    uint64_t r = cf_ops_rng_below(&g->rng, 100);
    return r < 50 ? "bronze" : r < 80 ? "silver" : r < 95 ? "gold" : "platinum";
}

static int64_t take_id(cf_ops_gen *g, cf_gen_table t, cf_err *err)
{
    ids *x = &g->ids[t];
    if (x->next >= x->n) {
        cf_err_set(err, CF_E_ARG, "internal: no reserved %s id left", table_names[t]);
        return -1;
    }
    return x->v[x->next++];
}

/* ----------------------------------------------------------- operations */

/* Each operation fills *st and returns 1, returns 0 when it has no row to
 * act on (nothing drawn), or -1 on error. */

static void begin(cf_ops_gen_stmt *st, int s, cf_gen_table t, cf_gen_kind k)
{
    memset(st, 0, sizeof *st);
    st->stmt = s;
    st->table = t;
    st->kind = k;
    st->expect_rows = 1;
}

static int ins_customer(cf_ops_gen *g, cf_ops_gen_stmt *st, cf_err *err)
{
    int64_t id = take_id(g, CF_GEN_CUSTOMERS, err);
    /* One name in ten from the non-ASCII tail of the lists. */
    bool intl = cf_ops_rng_chance(&g->rng, 0.1);
    size_t nf = NELEM(first_names), nl = NELEM(last_names);
    const name_t *f = intl ? &first_names[nf - N_INTL_FIRST + cf_ops_rng_below(&g->rng, N_INTL_FIRST)]
                           : &first_names[cf_ops_rng_below(&g->rng, nf - N_INTL_FIRST)];
    const name_t *l = intl ? &last_names[nl - N_INTL_LAST + cf_ops_rng_below(&g->rng, N_INTL_LAST)]
                           : &last_names[cf_ops_rng_below(&g->rng, nl - N_INTL_LAST)];
    const place_t *p;

    if (id < 0)
        return -1;
    begin(st, S_INS_CUSTOMER, CF_GEN_CUSTOMERS, CF_GEN_INSERT);
    setp(g, st, 0, "%" PRId64, id);
    if (cf_ops_rng_chance(&g->rng, 0.02))
        setnull(st, 1);
    else
        set_email(g, st, 1, f, l);
    setp(g, st, 2, "%s", f->shown);
    setp(g, st, 3, "%s", l->shown);
    set_address(g, st, 5, &p);          /* 5..9: address, city, state, postal, country */
    if (cf_ops_rng_chance(&g->rng, 0.1))
        setnull(st, 4);
    else
        set_pattern(g, st, 4, p->phone_fmt);
    set_ts(g, st, 10, g->clock - range(g, 0, 3 * 365 * 86400), false);
    set_ts(g, st, 11, g->clock, false);
    setp(g, st, 12, "%s", cf_ops_rng_chance(&g->rng, 0.92) ? "true" : "false");
    setp(g, st, 13, "%s", tier(g));
    set_money(g, st, 14, range(g, 0, 2000000));
    if (pool_add(&g->pools[CF_GEN_CUSTOMERS], id, 0, 0, err) < 0 ||
        imap_set(&g->cust, id, 0, err) < 0)
        return -1;
    return 1;
}

static int ins_product(cf_ops_gen *g, cf_ops_gen_stmt *st, cf_err *err)
{
    int64_t id = take_id(g, CF_GEN_PRODUCTS, err);

    if (id < 0)
        return -1;
    begin(st, S_INS_PRODUCT, CF_GEN_PRODUCTS, CF_GEN_INSERT);
    setp(g, st, 0, "%" PRId64, id);
    /* The id makes the SKU unique, as the schema demands. */
    setp(g, st, 1, "SKU-%08" PRId64, id);
    setp(g, st, 2, "%s %s", PICK(g, adjectives), PICK(g, nouns));
    if (cf_ops_rng_chance(&g->rng, 0.2))
        setnull(st, 3);
    else
        setp(g, st, 3, "%s", PICK(g, descriptions));
    setp(g, st, 4, "%s", PICK(g, categories));
    set_money(g, st, 5, range(g, 99, 99999));
    if (cf_ops_rng_chance(&g->rng, 0.1))
        setnull(st, 6);
    else {
        int64_t grams = range(g, 50, 25000);
        setp(g, st, 6, "%" PRId64 ".%03d", grams / 1000, (int)(grams % 1000));
    }
    setp(g, st, 7, "false");
    set_ts(g, st, 8, g->clock, false);
    set_ts(g, st, 9, g->clock, false);
    if (pool_add(&g->pools[CF_GEN_PRODUCTS], id, 0, 0, err) < 0)
        return -1;
    g->follow = F_INVENTORY_OF;
    g->follow_id = id;
    return 1;
}

static int ins_inventory(cf_ops_gen *g, cf_ops_gen_stmt *st, int64_t product, cf_err *err)
{
    int64_t id = take_id(g, CF_GEN_INVENTORY, err);

    if (id < 0)
        return -1;
    begin(st, S_INS_INVENTORY, CF_GEN_INVENTORY, CF_GEN_INSERT);
    setp(g, st, 0, "%" PRId64, id);
    setp(g, st, 1, "%" PRId64, product);
    setp(g, st, 2, "%s", PICK(g, warehouses));
    setp(g, st, 3, "%d", (int)range(g, 0, 500));
    setp(g, st, 4, "%d", (int)range(g, 0, 20));
    setp(g, st, 5, "%d", (int)range(g, 5, 50));
    if (cf_ops_rng_chance(&g->rng, 0.05))
        setnull(st, 6);
    else {
        int64_t c = range(g, 500, 5000000);     /* 1/10000 units */
        setp(g, st, 6, "%" PRId64 ".%04d", c / 10000, (int)(c % 10000));
    }
    setp(g, st, 7, "%s", cf_ops_rng_chance(&g->rng, 0.95) ? "true" : "false");
    if (cf_ops_rng_chance(&g->rng, 0.3))
        setnull(st, 8);
    else
        set_ts(g, st, 8, g->clock - range(g, 0, 90 * 86400), true);
    set_ts(g, st, 9, g->clock, false);
    if (imap_set(&g->prod, product, imap_get(&g->prod, product) + 1, err) < 0)
        return -1;
    return pool_add(&g->pools[CF_GEN_INVENTORY], id, product, 0, err);
}

/* A random live row of t, dropping rows whose parent was deleted (their
 * database rows went with it).  -1 when there is none. */
static ssize_t pick_live(cf_ops_gen *g, cf_gen_table t)
{
    pool *p = &g->pools[t];
    imap *parents = t == CF_GEN_ORDERS ? &g->cust : t == CF_GEN_INVENTORY ? &g->prod : NULL;

    while (p->n) {
        size_t i = (size_t)cf_ops_rng_below(&g->rng, p->n);
        if (!parents || imap_get(parents, p->rows[i].parent) != DEAD)
            return (ssize_t)i;
        pool_remove(p, i);
    }
    return -1;
}

static int ins_order(cf_ops_gen *g, cf_ops_gen_stmt *st, cf_err *err)
{
    ssize_t ci = pick_live(g, CF_GEN_CUSTOMERS);
    int64_t id, cust;

    if (ci < 0)
        return 0;
    if ((id = take_id(g, CF_GEN_ORDERS, err)) < 0)
        return -1;
    cust = g->pools[CF_GEN_CUSTOMERS].rows[ci].id;
    begin(st, S_INS_ORDER, CF_GEN_ORDERS, CF_GEN_INSERT);
    setp(g, st, 0, "%" PRId64, id);
    setp(g, st, 1, "%" PRId64, cust);
    set_ts(g, st, 2, g->clock, false);
    setp(g, st, 3, "%s", order_status[ST_PENDING]);
    int items = (int)range(g, 1, 5);
    setp(g, st, 4, "%d", items);
    set_money(g, st, 5, items * range(g, 199, 49999));
    setp(g, st, 6, "%s", PICK(g, currencies));
    setp(g, st, 7, "%s", cf_ops_rng_chance(&g->rng, 0.1) ? "true" : "false");
    if (cf_ops_rng_chance(&g->rng, 0.05)) {
        setnull(st, 8);
        setnull(st, 9);
    } else {
        const place_t *p = &places[cf_ops_rng_below(&g->rng, NELEM(places))];
        setp(g, st, 8, "%s", p->city);
        setp(g, st, 9, "%s", p->country);
    }
    if (cf_ops_rng_chance(&g->rng, 0.8))
        setnull(st, 10);
    else
        setp(g, st, 10, "%s", PICK(g, order_notes));
    setnull(st, 11);
    set_ts(g, st, 12, g->clock, false);
    if (pool_add(&g->pools[CF_GEN_ORDERS], id, cust, ST_PENDING, err) < 0 ||
        imap_set(&g->cust, cust, imap_get(&g->cust, cust) + 1, err) < 0)
        return -1;
    return 1;
}

/* Update weights per table: customers change most, products least. */
static const int upd_weight[CF_GEN_NTABLES] = { 35, 10, 25, 30 };

static int update(cf_ops_gen *g, cf_ops_gen_stmt *st, cf_err *err)
{
    int total = 0, w[CF_GEN_NTABLES];
    cf_gen_table t = CF_GEN_CUSTOMERS;
    ssize_t i = -1;

    /* Choose among tables with rows; a table found empty is dropped. */
    for (int k = 0; k < CF_GEN_NTABLES; k++)
        total += (w[k] = g->pools[k].n ? upd_weight[k] : 0);
    while (total > 0) {
        int64_t r = (int64_t)cf_ops_rng_below(&g->rng, (uint64_t)total);
        for (int k = 0; k < CF_GEN_NTABLES; k++)
            if ((r -= w[k]) < 0) {
                t = (cf_gen_table)k;
                break;
            }
        if ((i = pick_live(g, t)) >= 0)
            break;
        total -= w[t];
        w[t] = 0;
    }
    if (i < 0)
        return 0;                   /* nothing alive to update right now */

    row *rw = &g->pools[t].rows[i];
    switch (t) {
    case CF_GEN_CUSTOMERS: {
        uint64_t shape = cf_ops_rng_below(&g->rng, 10);
        if (shape < 5) {            /* spent money, maybe moved tier */
            begin(st, S_UPD_CUSTOMER_TIER, t, CF_GEN_UPDATE);
            setp(g, st, 0, "%" PRId64, rw->id);
            setp(g, st, 1, "%s", tier(g));
            set_money(g, st, 2, range(g, 0, 5000000));
            set_ts(g, st, 3, g->clock, false);
        } else if (shape < 8) {     /* moved house */
            const place_t *p;
            begin(st, S_UPD_CUSTOMER_MOVE, t, CF_GEN_UPDATE);
            setp(g, st, 0, "%" PRId64, rw->id);
            set_address(g, st, 1, &p);
            if (cf_ops_rng_chance(&g->rng, 0.1))
                setnull(st, 6);
            else
                set_pattern(g, st, 6, p->phone_fmt);
            set_ts(g, st, 7, g->clock, false);
        } else {                    /* (de)activated, new email */
            const name_t *f = &first_names[cf_ops_rng_below(&g->rng, NELEM(first_names))];
            const name_t *l = &last_names[cf_ops_rng_below(&g->rng, NELEM(last_names))];
            begin(st, S_UPD_CUSTOMER_STATUS, t, CF_GEN_UPDATE);
            setp(g, st, 0, "%" PRId64, rw->id);
            setp(g, st, 1, "%s", cf_ops_rng_chance(&g->rng, 0.7) ? "true" : "false");
            set_email(g, st, 2, f, l);
            set_ts(g, st, 3, g->clock, false);
        }
        break;
    }
    case CF_GEN_ORDERS: {
        int s = rw->state, ns;
        /* Forward along pending -> paid -> shipped -> delivered; some early
         * orders are cancelled; finished ones get a note instead. */
        if ((s == ST_PENDING || s == ST_PAID) && cf_ops_rng_chance(&g->rng, 0.05))
            ns = ST_CANCELLED;
        else if (s < ST_DELIVERED)
            ns = s + 1;
        else
            ns = s;
        begin(st, S_UPD_ORDER, t, CF_GEN_UPDATE);
        setp(g, st, 0, "%" PRId64, rw->id);
        setp(g, st, 1, "%s", order_status[ns]);
        if (ns == ST_SHIPPED && s != ST_SHIPPED)
            set_ts(g, st, 2, g->clock, true);
        else
            setnull(st, 2);
        if (ns == s || cf_ops_rng_chance(&g->rng, 0.1))
            setp(g, st, 3, "%s", PICK(g, order_notes));
        else
            setnull(st, 3);
        set_ts(g, st, 4, g->clock, false);
        rw->state = ns;
        break;
    }
    case CF_GEN_PRODUCTS:
        begin(st, S_UPD_PRODUCT, t, CF_GEN_UPDATE);
        setp(g, st, 0, "%" PRId64, rw->id);
        set_money(g, st, 1, range(g, 99, 99999));
        setp(g, st, 2, "%s", cf_ops_rng_chance(&g->rng, 0.05) ? "true" : "false");
        set_ts(g, st, 3, g->clock, false);
        break;
    default: {                      /* inventory: a sale or a restock */
        bool restock = cf_ops_rng_chance(&g->rng, 0.3);
        begin(st, S_UPD_INVENTORY, t, CF_GEN_UPDATE);
        setp(g, st, 0, "%" PRId64, rw->id);
        setp(g, st, 1, "%d", restock ? (int)range(g, 50, 500) : -(int)range(g, 1, 10));
        setp(g, st, 2, "%d", (int)range(g, 0, 20));
        if (restock)
            set_ts(g, st, 3, g->clock, true);
        else
            setnull(st, 3);
        set_ts(g, st, 4, g->clock, false);
        break;
    }
    }
    return 1;
}

/* Delete weights: orders most, then customers (with their orders), then
 * products (with their inventory). */
static int del(cf_ops_gen *g, cf_ops_gen_stmt *st, cf_err *err)
{
    static const cf_gen_table order[] = { CF_GEN_ORDERS, CF_GEN_CUSTOMERS, CF_GEN_PRODUCTS };
    static const int weight[] = { 55, 30, 15 };
    int total = 0, w[3];
    ssize_t i = -1;
    int k = 0;

    for (int j = 0; j < 3; j++)
        total += (w[j] = g->pools[order[j]].n ? weight[j] : 0);
    while (total > 0) {
        int64_t r = (int64_t)cf_ops_rng_below(&g->rng, (uint64_t)total);
        for (k = 0; k < 3; k++)
            if ((r -= w[k]) < 0)
                break;
        if ((i = pick_live(g, order[k])) >= 0)
            break;
        total -= w[k];
        w[k] = 0;
    }
    if (i < 0)
        return 0;

    cf_gen_table t = order[k];
    row rw = g->pools[t].rows[i];
    pool_remove(&g->pools[t], (size_t)i);
    if (t == CF_GEN_ORDERS) {
        begin(st, S_DEL_ORDER, t, CF_GEN_DELETE);
        setp(g, st, 0, "%" PRId64, rw.id);
        return imap_set(&g->cust, rw.parent, imap_get(&g->cust, rw.parent) - 1, err) < 0 ? -1 : 1;
    }
    if (t == CF_GEN_CUSTOMERS) {
        /* Children first so the foreign key holds whatever ON DELETE says. */
        begin(st, S_DEL_ORDERS_OF_CUSTOMER, CF_GEN_ORDERS, CF_GEN_DELETE);
        setp(g, st, 0, "%" PRId64, rw.id);
        st->expect_rows = imap_get(&g->cust, rw.id);
        g->follow = F_DELETE_CUSTOMER;
        g->follow_id = rw.id;
        return imap_set(&g->cust, rw.id, DEAD, err) < 0 ? -1 : 1;
    }
    begin(st, S_DEL_INVENTORY_OF_PRODUCT, CF_GEN_INVENTORY, CF_GEN_DELETE);
    setp(g, st, 0, "%" PRId64, rw.id);
    st->expect_rows = imap_get(&g->prod, rw.id);
    g->follow = F_DELETE_PRODUCT;
    g->follow_id = rw.id;
    return imap_set(&g->prod, rw.id, DEAD, err) < 0 ? -1 : 1;
}

int cf_ops_gen_next(cf_ops_gen *g, cf_ops_gen_stmt *st, cf_err *err)
{
    int rc;

    if (!g->reserved)
        return cf_err_set(err, CF_E_ARG, "internal: ids not reserved before planning");
    if (g->follow != F_NONE) {
        follow_t f = g->follow;
        int64_t id = g->follow_id;
        g->follow = F_NONE;
        if (f == F_INVENTORY_OF) {
            rc = ins_inventory(g, st, id, err);
        } else {
            begin(st, f == F_DELETE_CUSTOMER ? S_DEL_CUSTOMER : S_DEL_PRODUCT,
                  f == F_DELETE_CUSTOMER ? CF_GEN_CUSTOMERS : CF_GEN_PRODUCTS, CF_GEN_DELETE);
            setp(g, st, 0, "%" PRId64, id);
            rc = 0;
        }
        if (rc == 0)
            g->issued[st->table][st->kind]++;
        return rc < 0 ? -1 : 1;
    }

    /* Interleave the remaining work at random, each kind weighted by how much
     * of it is left, so inserts, updates and deletes mix as in real traffic.
     * Orders need a live customer, updates and deletes a live row: a kind
     * that finds none sits out this draw (returns 0) and another is drawn. */
    int64_t w[5] = {
        g->left_ins[CF_GEN_CUSTOMERS], g->left_ins[CF_GEN_PRODUCTS], g->left_ins[CF_GEN_ORDERS],
        g->left_upd, g->left_del,
    };
    for (;;) {
        int64_t total = w[0] + w[1] + w[2] + w[3] + w[4], r;
        int c;
        if (total == 0)
            break;
        r = (int64_t)cf_ops_rng_below(&g->rng, (uint64_t)total);
        for (c = 0; c < 4; c++)
            if ((r -= w[c]) < 0)
                break;
        /* The synthetic clock moves 1-60 s per operation. */
        g->clock += range(g, 1, 60);
        switch (c) {
        case 0: rc = ins_customer(g, st, err); break;
        case 1: rc = ins_product(g, st, err); break;
        case 2: rc = ins_order(g, st, err); break;
        case 3: rc = update(g, st, err); break;
        default: rc = del(g, st, err); break;
        }
        if (rc < 0)
            return -1;
        if (rc == 0) {
            w[c] = 0;
            continue;
        }
        switch (c) {
        case 0: g->left_ins[CF_GEN_CUSTOMERS]--; break;
        case 1: g->left_ins[CF_GEN_PRODUCTS]--; break;
        case 2: g->left_ins[CF_GEN_ORDERS]--; break;
        case 3: g->left_upd--; break;
        default: g->left_del--; break;
        }
        g->issued[st->table][st->kind]++;
        return 1;
    }
    if (g->left_ins[CF_GEN_ORDERS])
        return cf_err_set(err, CF_E_ARG, "cannot insert %" PRId64 " more orders: no customer exists "
                          "(add --customers)", g->left_ins[CF_GEN_ORDERS]);
    if (g->left_upd)
        return cf_err_set(err, CF_E_ARG, "cannot run %" PRId64 " more updates: no rows exist",
                          g->left_upd);
    if (g->left_del)
        return cf_err_set(err, CF_E_ARG, "cannot run %" PRId64 " more deletes: no rows left",
                          g->left_del);
    return 0;
}

/* ------------------------------------------------------------- render */

int cf_ops_gen_render(cf_buf *out, const char *sql, int nparams, const char *const *params,
                      cf_err *err)
{
    const char *p = sql;

    while (*p) {
        if (*p == '$' && p[1] >= '1' && p[1] <= '9') {
            int k = 0;
            const char *q = p + 1;
            while (*q >= '0' && *q <= '9')
                k = k * 10 + (*q++ - '0');
            if (k < 1 || k > nparams)
                return cf_err_set(err, CF_E_ARG, "placeholder $%d without a parameter", k);
            const char *v = params[k - 1];
            if (!v) {
                if (cf_buf_append(out, "NULL", 4, err) < 0)
                    return -1;
            } else {
                /* standard_conforming_strings (on since 9.1): only ' needs doubling. */
                if (cf_buf_putc(out, '\'', err) < 0)
                    return -1;
                for (; *v; v++)
                    if ((*v == '\'' && cf_buf_putc(out, '\'', err) < 0) || cf_buf_putc(out, (uint8_t)*v, err) < 0)
                        return -1;
                if (cf_buf_putc(out, '\'', err) < 0)
                    return -1;
            }
            p = q;
            continue;
        }
        if (cf_buf_putc(out, (uint8_t)*p++, err) < 0)
            return -1;
    }
    return cf_buf_append(out, ";\n", 2, err);
}
