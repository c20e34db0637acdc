-- bootstrap.sql - the role and database of the local stack; run by scripts/stack.sh as the postgres superuser.
-- Idempotent.  cdcuser needs REPLICATION for Debezium's logical replication slot.

SELECT 'CREATE ROLE cdcuser LOGIN REPLICATION PASSWORD ''cdcpass'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdcuser')
\gexec

SELECT 'CREATE DATABASE cdcdb OWNER cdcuser'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'cdcdb')
\gexec
