import t from 'tap';
import { WeftError } from '../../src/errors.js';
t.test('errors carry codes', async (t) => {
  const e = new WeftError('WEFT_ERR_MODEL_CORRUPT', 'x');
  t.equal(e.code, 'WEFT_ERR_MODEL_CORRUPT');
  t.equal(e.status, 500);
});
