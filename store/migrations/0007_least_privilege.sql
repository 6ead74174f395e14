-- Least privilege: from this version on, a direction (publish, subscribe)
-- that a user's merged permissions (its own and all its roles') allow
-- nothing in is closed in the user JWT. Before, such a JWT carried no rule
-- for the direction, and nats-server read that as "everything" (or, with
-- only denies, "everything but the denies").
--
-- So that an upgrade cuts off no user that works today, every user whose
-- direction was effectively unrestricted gets an explicit '>' in its own
-- allow for that direction, denies kept: the same access as before, now
-- visible ('authrelay doctor' lists it). A direction was unrestricted only
-- when the merged allow was empty; publish also needed no response
-- permission anywhere in the merge, since nats-server closes publish (all
-- but the replies) for a JWT with a response permission and no publish
-- allow. Roles are left as they are: a role with an empty direction
-- contributes nothing, and giving it '>' would widen every holder.
--
-- Each user changed gets an admin row in the audit trail. The users
-- triggers of 0005 and 0006 record the change like any other.

CREATE TEMP TABLE least_privilege_open AS
SELECT u.name AS name,
    coalesce(json_array_length(u.permissions, '$.pub.allow'), 0) = 0
    AND coalesce(json_type(u.permissions, '$.resp'), 'null') <> 'object'
    AND NOT EXISTS (
        SELECT 1 FROM user_roles ur JOIN roles r ON r.name = ur.role
        WHERE ur.user = u.name
          AND (coalesce(json_array_length(r.permissions, '$.pub.allow'), 0) > 0
               OR coalesce(json_type(r.permissions, '$.resp'), 'null') = 'object')
    ) AS pub,
    coalesce(json_array_length(u.permissions, '$.sub.allow'), 0) = 0
    AND NOT EXISTS (
        SELECT 1 FROM user_roles ur JOIN roles r ON r.name = ur.role
        WHERE ur.user = u.name
          AND coalesce(json_array_length(r.permissions, '$.sub.allow'), 0) > 0
    ) AS sub
FROM users u;

INSERT INTO audit (time, kind, user, actor, action, detail)
SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) * 1000000,
    'admin', name, 'authrelay upgrade', 'user migrate',
    json_object('migration', '0007_least_privilege',
        'explicit_allow_all', CASE WHEN pub AND sub THEN json_array('pub', 'sub')
                                   WHEN pub THEN json_array('pub')
                                   ELSE json_array('sub') END)
FROM least_privilege_open WHERE pub OR sub ORDER BY name;

UPDATE users SET permissions = json_set(permissions, '$.pub.allow', json_array('>'))
WHERE name IN (SELECT name FROM least_privilege_open WHERE pub);

UPDATE users SET permissions = json_set(permissions, '$.sub.allow', json_array('>'))
WHERE name IN (SELECT name FROM least_privilege_open WHERE sub);

DROP TABLE least_privilege_open;
