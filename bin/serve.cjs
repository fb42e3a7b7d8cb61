// `npm start`: the server (dist/src/server.js) with weft's thread pool size (bin/threadpool.cjs).
require('./threadpool.cjs');
import('../dist/src/server.js').then(({ runServer }) => runServer(process.argv.slice(2)));
