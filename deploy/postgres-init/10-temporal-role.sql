-- Run once, by PostgreSQL's image on its first start (an empty data
-- volume): Temporal's own role, which creates its two databases and owns
-- them (temporalio/auto-setup), with no right on mailwave's. The password
-- is read from the compose secret by psql itself, so it is on no command line.
\set pw `cat /run/secrets/temporal-db-password`
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'pw';
