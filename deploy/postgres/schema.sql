-- schema.sql - the source tables cdcflow captures: customers (as the system it replaces), orders, products, inventory.
-- Idempotent: scripts/stack.sh runs it as cdcuser on every start.  REPLICA IDENTITY FULL makes
-- PostgreSQL log whole old rows, so Debezium's "before" is complete for updates and deletes
-- (needed for Change Data Feed pre-images), not just the primary key.

CREATE TABLE IF NOT EXISTS customers (
    customer_id SERIAL PRIMARY KEY,
    email VARCHAR(255),
    first_name VARCHAR(100),
    last_name VARCHAR(100),
    phone VARCHAR(20),
    address_line1 VARCHAR(255),
    city VARCHAR(100),
    state VARCHAR(50),
    postal_code VARCHAR(20),
    country VARCHAR(50),
    registration_date TIMESTAMP,
    last_updated TIMESTAMP,
    is_active BOOLEAN,
    customer_tier VARCHAR(20),
    lifetime_value NUMERIC(10,2)
);

CREATE TABLE IF NOT EXISTS products (
    product_id SERIAL PRIMARY KEY,
    sku VARCHAR(40) NOT NULL UNIQUE,
    name VARCHAR(200) NOT NULL,
    description TEXT,
    category VARCHAR(50),
    unit_price NUMERIC(10,2) NOT NULL,
    weight_kg NUMERIC(8,3),
    is_discontinued BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    last_updated TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS orders (
    order_id SERIAL PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    order_date TIMESTAMP NOT NULL DEFAULT now(),
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    item_count INTEGER NOT NULL DEFAULT 1,
    total_amount NUMERIC(12,2) NOT NULL,
    currency CHAR(3) NOT NULL DEFAULT 'USD',
    is_gift BOOLEAN NOT NULL DEFAULT FALSE,
    shipping_city VARCHAR(100),
    shipping_country VARCHAR(50),
    notes TEXT,
    shipped_at TIMESTAMPTZ,
    last_updated TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS inventory (
    inventory_id SERIAL PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (product_id) ON DELETE CASCADE,
    warehouse VARCHAR(50) NOT NULL,
    quantity_on_hand INTEGER NOT NULL DEFAULT 0,
    quantity_reserved INTEGER NOT NULL DEFAULT 0,
    reorder_level INTEGER NOT NULL DEFAULT 10,
    unit_cost NUMERIC(10,4),
    is_tracked BOOLEAN NOT NULL DEFAULT TRUE,
    last_restocked TIMESTAMPTZ,
    last_updated TIMESTAMP NOT NULL DEFAULT now(),
    UNIQUE (product_id, warehouse)
);

CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON orders (customer_id);

ALTER TABLE customers REPLICA IDENTITY FULL;
ALTER TABLE products  REPLICA IDENTITY FULL;
ALTER TABLE orders    REPLICA IDENTITY FULL;
ALTER TABLE inventory REPLICA IDENTITY FULL;

-- Debezium's pgoutput plugin reads through a publication.  Creating it here, owned by cdcuser,
-- lets the connector work without superuser rights whatever its publication.autocreate.mode.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'dbz_publication') THEN
        CREATE PUBLICATION dbz_publication FOR TABLE customers, orders, products, inventory;
    END IF;
END
$$;
