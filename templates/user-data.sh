#!/bin/sh
# appgrid user data for {{ app }} / {{ role }}: rendered by appgrid, every value
# shell-quoted by the template engine. Roles are configured over SSH afterwards.
set -eu
mkdir -p /etc/appgrid
printf '%s\n' {{ app }} > /etc/appgrid/app
printf '%s\n' {{ role }} > /etc/appgrid/role
printf '%s\n' {{ ssh_user }} > /etc/appgrid/ssh_user
