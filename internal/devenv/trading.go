package devenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// TradingSchema is the demo's sample schema: database trading with the
// tables orders and fills that pipelines/ captures.
var TradingSchema = []string{
	"CREATE DATABASE IF NOT EXISTS trading",
	`CREATE TABLE IF NOT EXISTS trading.orders (
		id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
		account VARCHAR(32) NOT NULL,
		symbol VARCHAR(12) NOT NULL,
		side ENUM('buy','sell') NOT NULL,
		qty INT NOT NULL,
		price DECIMAL(12,4) NOT NULL,
		status ENUM('open','filled','cancelled') NOT NULL DEFAULT 'open',
		created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
		updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
	) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS trading.fills (
		id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
		order_id BIGINT UNSIGNED NOT NULL,
		qty INT NOT NULL,
		price DECIMAL(12,4) NOT NULL,
		venue CHAR(4) NOT NULL,
		filled_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
		KEY (order_id)
	) ENGINE=InnoDB`,
}

// CreateTrading creates the sample schema and seeds n orders.
func (m *MariaDB) CreateTrading(n int) error {
	if err := m.Exec(TradingSchema...); err != nil {
		return err
	}
	if n <= 0 {
		return nil
	}
	return m.Exec(fmt.Sprintf(`INSERT INTO trading.orders (account, symbol, side, qty, price)
		SELECT CONCAT('acct-', seq %% 97), ELT(1 + seq %% 4, 'ACME', 'GLOBX', 'INITECH', 'UMBRL'),
		       IF(seq %% 2 = 0, 'buy', 'sell'), 1 + seq %% 500, 10 + (seq %% 1000) / 100
		FROM trading.seq_1_to_%d`, n))
}

// TradingWriter generates the demo's writes: new orders, fills of open
// orders (an update of the order and an insert into fills in one
// transaction) and cancellations, at about rate transactions per second,
// until ctx ends. It returns the number of transactions committed.
func (m *MariaDB) TradingWriter(ctx context.Context, rate int) (int, error) {
	c, err := m.Root()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if rate <= 0 {
		rate = 100
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	symbols := []string{"ACME", "GLOBX", "INITECH", "UMBRL"}
	venues := []string{"XNYS", "XNAS", "BATS", "IEXG"}
	done := 0
	for {
		select {
		case <-ctx.Done():
			return done, nil
		case <-tick.C:
		}
		var stmts []string
		switch p := rand.IntN(10); {
		case p < 5:
			stmts = []string{fmt.Sprintf("INSERT INTO trading.orders (account, symbol, side, qty, price) VALUES ('acct-%d', '%s', '%s', %d, %.4f)",
				rand.IntN(97), symbols[rand.IntN(len(symbols))], []string{"buy", "sell"}[rand.IntN(2)], 1+rand.IntN(500), 10+rand.Float64()*90)}
		case p < 9:
			stmts = []string{
				"BEGIN",
				"SELECT @o := id, @q := qty, @p := price FROM trading.orders WHERE status = 'open' ORDER BY id DESC LIMIT 1 FOR UPDATE",
				"UPDATE trading.orders SET status = 'filled' WHERE id = @o",
				fmt.Sprintf("INSERT INTO trading.fills (order_id, qty, price, venue) SELECT @o, @q, @p, '%s' FROM DUAL WHERE @o IS NOT NULL", venues[rand.IntN(len(venues))]),
				"COMMIT",
			}
		default:
			stmts = []string{"UPDATE trading.orders SET status = 'cancelled' WHERE status = 'open' ORDER BY id LIMIT 1"}
		}
		for _, s := range stmts {
			if _, err := c.Execute(s); err != nil {
				_, _ = c.Execute("ROLLBACK")
				return done, fmt.Errorf("trading writer: %w", err)
			}
		}
		done++
	}
}
