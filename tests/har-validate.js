// SPDX-License-Identifier: MIT
// Validates HAR files against the HAR 1.2 schema (har-validator, as Chrome-like
// consumers expect it). Usage: node tests/har-validate.js FILE...
// Exits 0 when every file is valid, 1 otherwise. The module is found through
// NODE_PATH (the project's setup installs it in /usr/local/lib/mitmrec-test).
'use strict';

const fs = require('fs');

let validator;

const DEFAULT_MODULES = '/usr/local/lib/mitmrec-test/node_modules';

function loadValidator() {
    try {
        return require('har-validator');
    } catch (e) {
        // Where the project's setup puts it, for runs without NODE_PATH.
        try {
            return require(DEFAULT_MODULES + '/har-validator');
        } catch (e2) {
            console.log('har-validator not found (set NODE_PATH): ' + e.message.split('\n')[0]);
            process.exit(1);
        }
    }
}

function describe(err) {
    const where = err.dataPath || err.instancePath || '(root)';
    const params = err.params ? ' ' + JSON.stringify(err.params) : '';
    return '  ' + where + ': ' + err.message + params;
}

async function validateFile(file) {
    const raw = fs.readFileSync(file);
    // JSON.parse would quietly replace bad bytes; a HAR must be UTF-8.
    const text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    await validator.har(JSON.parse(text));
}

async function main(files) {
    let failed = 0;

    if (files.length === 0) {
        console.log('usage: node tests/har-validate.js FILE...');
        return 1;
    }
    validator = loadValidator();
    for (const file of files) {
        try {
            await validateFile(file);
            console.log('valid: ' + file);
        } catch (e) {
            failed = 1;
            console.log('invalid: ' + file);
            if (Array.isArray(e.errors)) {
                for (const err of e.errors) {
                    console.log(describe(err));
                }
            } else {
                console.log('  ' + e.message);
            }
        }
    }
    return failed;
}

main(process.argv.slice(2)).then(
    (rc) => process.exit(rc),
    (e) => {
        console.log(e && e.stack ? e.stack : String(e));
        process.exit(1);
    }
);
