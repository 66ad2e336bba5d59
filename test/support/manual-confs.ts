/** Config files exactly as the Seafile manuals print them (seeds/001, seeds/002), quirks included. */

/** seafile.conf from the Seafile 11 manual. */
export const SEAFILE_11_CONF = `# jwt_private_key are required.You should generate it manually.
[notification]
enabled = true
# the ip of notification server. (Do not modify the host when using Nginx or Apache, as Nginx or Apache will proxy the requests to this address)
host = 127.0.0.1
# the port of notification server
port = 8083
# the log level of notification server
# You can set log_level to debug to print messages sent to clients.
log_level = info
# jwt_private_key is used to generate jwt token and authenticate seafile server
jwt_private_key = M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F
`;

/** seafile.conf from the Seafile 10.0 manual. */
export const SEAFILE_10_SEAFILE_CONF = `## seafile.conf
# notification_token and private_key are required.You should generate them manually.
[notification]
# notification_url is the url of notification server
notification_url = 127.0.0.1:8083
notification_token = xP7GGgGPVCQu8r0xNJ+k4Q==
# private_key is used to generate jwt token
private_key = M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F
`;

/** notification.conf from the Seafile 10.0 manual, stray quote in private_key included. */
export const SEAFILE_10_NOTIFICATION_CONF = `## notification.conf
# private_key and notification_token are required.You should generate them manually.
# private_key and notification_token should be the same as configured in seafile.conf.
[general]
# the ip of notification server
host = 127.0.0.1
# the port of notification server
port = 8083
# the log level of notification server
log_level = info
# notification_token is used to simply authenticate seafile server
notification_token = xP7GGgGPVCQu8r0xNJ+k4Q==
# private_key is used to check whether the request jwt token is valid
private_key = "M@O8VWUb81YvmtWLHGB2I_V7di5-@0p(MF*GrE!sIws23F
`;
