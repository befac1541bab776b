\set VERBOSITY terse
-- Never log this session's statements, not even on error: one carries a password.
SET log_min_error_statement = panic;
SET log_statement = 'none';
SELECT 'CREATE ROLE {{ group }} NOLOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{{ group }}') \gexec
SELECT 'CREATE ROLE {{ user }} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{{ user }}') \gexec
ALTER ROLE {{ user }} WITH LOGIN {% if superuser %}SUPERUSER{% else %}NOSUPERUSER{% endif %} PASSWORD {{ password }};
{% if member_of_group %}GRANT {{ group }} TO {{ user }};
{% endif %}{% if database %}SELECT 'CREATE DATABASE {{ database }} OWNER {{ user }}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{{ database }}') \gexec
{% endif %}
